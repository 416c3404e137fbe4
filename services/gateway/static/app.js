// Baton Shop: the demo page. Plain JavaScript, no build step, no inline
// scripts (the CSP allows only this file). Every API call goes to the gateway
// with the session cookie; state-changing calls carry the CSRF token. The
// page never sees a token.
"use strict";

const state = { session: null, products: [], cart: new Map(), charges: new Map() };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const money = (cents) =>
  (Number(cents || 0) / 100).toLocaleString(undefined, { style: "currency", currency: "USD" });
// The last 8 characters: ids here are UUIDv7, whose first characters are a timestamp.
const short = (id) => (id ? String(id).slice(-8) : "—");
const has = (role) => Boolean(state.session?.user?.roles?.includes(role));

// A random idempotency key (crypto.randomUUID needs a secure context).
function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- API --------------------------------------------------------------------

// `key`: the request's Idempotency-Key (a new one for each order; a refund
// sent again after a step-up keeps its own).
async function api(method, path, body, key) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.session?.csrf_token) headers["X-CSRF-Token"] = state.session.csrf_token;
  if (method === "POST" && path === "/api/orders") headers["Idempotency-Key"] = randomKey();
  if (key) headers["Idempotency-Key"] = key;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return { status: 0, ok: false, body: { error: "network", error_description: String(error) } };
  }
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  let relay = null;
  try {
    relay = JSON.parse(response.headers.get("x-baton-relay") || "null");
  } catch {
    relay = null;
  }
  const result = {
    status: response.status,
    ok: response.ok,
    body: json,
    relay,
    deniedByGateway: response.headers.get("x-baton-denied-by") === "gateway",
    // A service asked for a stronger sign-in (RFC 9470): the gateway names it.
    stepUp: response.headers.get("x-baton-step-up"),
  };
  if (result.status === 401 && result.deniedByGateway && json?.sign_in) {
    showBanner("Your session has ended.", json.sign_in);
  }
  return result;
}

// ---- Session ----------------------------------------------------------------

async function loadSession() {
  const response = await fetch("/auth/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
  state.session = response.ok ? await response.json() : { authenticated: false };
  if (!state.session.authenticated) {
    $("signed-out").hidden = false;
    $("signed-in").hidden = true;
    $("account").hidden = true;
    return;
  }
  const user = state.session.user;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("account").hidden = false;
  $("user-name").textContent = user.name || user.email || short(user.sub);
  $("user-roles").replaceChildren(...(user.roles || []).map((r) => el("span", { class: `badge role-${r}`, text: r })));
  $("logout-csrf").value = state.session.csrf_token;
  $("account-link").href = state.session.account_url;
  $("orders-title").textContent = has("support") || has("admin") ? "All orders" : "Your orders";
  $("dashboard-inventory").hidden = !has("admin");
  await Promise.all([loadDashboard(), loadProducts(), loadOrders()]);
  await replayAfterStepUp();
}

function showBanner(text, signIn, action = "Sign in again") {
  $("banner-text").textContent = text;
  $("banner-action").href = signIn || "/auth/login";
  $("banner-action").textContent = action;
  $("banner").hidden = false;
}

// ---- Step-up (RFC 9470) ---------------------------------------------------------

// A request a service refused for want of a stronger sign-in waits here
// (this tab only) while the person takes the step-up sign-in; back on the
// page it is sent once more with the same Idempotency-Key, so however often
// it arrives it is carried out once.
const PENDING = "baton.pending-step-up";
const PENDING_FOR_MS = 10 * 60 * 1000;

function askForStepUp(title, method, path, body, key, link) {
  sessionStorage.setItem(PENDING, JSON.stringify({ title, method, path, body, key, at: Date.now() }));
  const back = `${link}&return_to=${encodeURIComponent(location.pathname)}`;
  showBanner(`${title} needs a recent second factor.`, back, "Confirm with your authenticator app");
}

// Sends the waiting request once, if there is one (and it is recent).
async function replayAfterStepUp() {
  const saved = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  if (!saved) return;
  const pending = JSON.parse(saved);
  if (Date.now() - pending.at > PENDING_FOR_MS) return;
  const result = await api(pending.method, pending.path, pending.body, pending.key);
  trace(`${pending.title} (after the step-up)`, `${pending.method} ${pending.path}`, result, ["payment"]);
  if (result.stepUp) {
    // Stepping up did not give the service what it asks for: no loop.
    showBanner("A second factor is needed, and your account has none yet: set up an authenticator app, then try again.", state.session.account_url, "Your account");
  }
  if (result.ok) await Promise.all([loadDashboard(), loadOrders()]);
}

// ---- Dashboard ----------------------------------------------------------------

// What each dashboard part is and which service answers it.
const DASHBOARD_PARTS = [
  {
    key: "orders",
    label: "Recent orders",
    service: "order",
    summary: (v) => {
      const list = v.orders || [];
      return [String(list.length), list.length ? `latest ${money(list[0].total_cents)}, ${list[0].status}` : "none yet"];
    },
  },
  {
    key: "payments",
    label: "Recent charges",
    service: "payment",
    summary: (v) => {
      const list = v.charges || [];
      const total = list.reduce((sum, c) => sum + (c.status === "succeeded" ? c.amount_cents - (c.refunded_cents || 0) : 0), 0);
      return [String(list.length), list.length ? `${money(total)} net` : "none yet"];
    },
  },
  {
    key: "low_stock",
    label: "Running low",
    service: "inventory",
    summary: (v) => {
      const items = v.items || [];
      return [String(items.length), items.length ? items.map((i) => `${i.sku} (${i.stock})`).join(", ") : "everything is stocked"];
    },
  },
];

// Why a part is missing, in words.
function partProblem(part) {
  if (part?.denied) return `refused: ${part.denied.replace(/_/g, " ")}`;
  if (part?.unavailable) {
    const why = part.unavailable.replace(/_/g, " ");
    return part.retry_after ? `${why}, retry in ${part.retry_after} s` : why;
  }
  return null;
}

async function loadDashboard(traced = false) {
  const result = await api("GET", "/api/dashboard");
  const box = $("dashboard");
  if (!result.ok) {
    box.replaceChildren(el("p", { class: "empty error", text: describe(result) }));
    if (traced) trace("Dashboard", "GET /api/dashboard", result, []);
    return;
  }
  const page = result.body || {};
  const parts = DASHBOARD_PARTS.filter((p) => p.key in page);
  box.replaceChildren(
    ...parts.map((p) => {
      const part = page[p.key];
      const problem = partProblem(part);
      const [value, note] = problem ? ["—", problem] : p.summary(part);
      return el(
        "div",
        { class: `tile${problem ? " unavailable" : ""}` },
        el("div", { class: "tile-label" }, p.label, el("span", { class: "tile-service", text: p.service })),
        el("div", { class: "tile-value", text: value }),
        el("div", { class: `tile-note${problem ? " error" : ""}`, text: part?.fallback ? `${note} · from fallback ${part.fallback}` : note }),
      );
    }),
  );
  if (traced) traceDashboard(page, parts);
}

// The dashboard's relay trace: the gateway validated the token, then called
// each service in parallel with the token that service's route relays.
function traceDashboard(page, parts) {
  const user = page.user || {};
  const hops = [
    { name: "Browser", status: "sent", ok: true, detail: "GET /api/dashboard with the session cookie", facts: [] },
    {
      name: "Gateway",
      status: "validated",
      ok: true,
      detail: `${user.token === "bearer" ? "caller's bearer token" : "token from your session"}; ${parts.length} calls in parallel, each with the token its route relays (exchanged for that service alone, or as is)`,
      facts: [
        ["sub", short(user.sub)],
        ["roles", (user.roles || []).join(", ") || "—"],
        ["trace", short(page.trace_id)],
      ],
    },
    ...parts.map((p) => {
      const problem = partProblem(page[p.key]);
      return {
        name: p.service,
        status: problem ? "unavailable" : "validated",
        ok: !problem,
        detail: problem || "validated the token itself and answered",
        facts: [],
      };
    }),
  ];
  $("trace-action").replaceChildren(el("strong", { text: "Dashboard" }), " — HTTP 200");
  $("trace-time").textContent = new Date().toLocaleTimeString();
  $("trace").replaceChildren(...hops.map(renderHop));
  $("trace-footer").textContent = "One page, several services: a failed part is marked, never an error for the whole page.";
}

// ---- Products and the cart --------------------------------------------------

async function loadProducts(traced = false) {
  const result = await api("GET", "/api/inventory/items");
  if (traced || !result.ok) trace("List products", "GET /api/inventory/items", result, ["inventory"]);
  const box = $("products");
  if (!result.ok) {
    box.replaceChildren(el("p", { class: "empty error", text: describe(result) }));
    return;
  }
  state.products = result.body?.items || [];
  if (state.products.length === 0) {
    box.replaceChildren(el("p", { class: "empty", text: "No products yet. An admin can add some." }));
    return;
  }
  box.replaceChildren(...state.products.map(productRow));
  updateCart();
}

function productRow(item) {
  const quantity = el("input", {
    type: "number",
    min: "0",
    max: String(Math.max(0, item.stock)),
    value: String(state.cart.get(item.sku) || 0),
    "aria-label": `Quantity of ${item.name}`,
    class: "qty",
    disabled: item.stock <= 0,
    oninput: (event) => {
      const n = Math.max(0, Math.min(item.stock, Number.parseInt(event.target.value, 10) || 0));
      if (n > 0) state.cart.set(item.sku, n);
      else state.cart.delete(item.sku);
      updateCart();
    },
  });
  const stock =
    item.stock <= 0
      ? el("span", { class: "stock out", text: "Out of stock" })
      : el("span", { class: item.stock < 5 ? "stock low" : "stock", text: `${item.stock} in stock` });
  return el(
    "div",
    { class: "product" },
    el(
      "div",
      { class: "product-main" },
      el("div", { class: "product-name", text: item.name }),
      el("div", { class: "product-meta" }, el("code", { text: item.sku }), " · ", stock),
      item.description ? el("div", { class: "product-desc", text: item.description }) : null,
    ),
    el("div", { class: "product-price", text: money(item.price_cents) }),
    el(
      "div",
      { class: "product-actions" },
      quantity,
      el("button", {
        type: "button",
        class: "button small ghost",
        title: "Requires the admin role",
        text: "Restock +10",
        onclick: () => restock(item),
      }),
    ),
  );
}

function updateCart() {
  let total = 0;
  for (const [sku, qty] of state.cart) {
    const item = state.products.find((p) => p.sku === sku);
    if (item) total += item.price_cents * qty;
  }
  $("cart-total").textContent = money(total);
  $("place-order").disabled = state.cart.size === 0;
}

async function placeOrder() {
  const lines = [...state.cart].map(([sku, quantity]) => ({ sku, quantity }));
  $("place-order").disabled = true;
  const result = await api("POST", "/api/orders", { lines });
  trace("Place order", "POST /api/orders", result, ["order", "inventory", "payment"]);
  if (result.ok) {
    state.cart.clear();
    await Promise.all([loadDashboard(), loadProducts(), loadOrders()]);
  } else {
    updateCart();
  }
}

async function restock(item) {
  const body = { name: item.name, description: item.description || "", price_cents: item.price_cents, stock: item.stock + 10 };
  const result = await api("PUT", `/api/inventory/items/${encodeURIComponent(item.sku)}`, body);
  trace(`Restock ${item.sku}`, `PUT /api/inventory/items/${item.sku}`, result, ["inventory"]);
  if (result.ok) await loadProducts();
}

// ---- Orders and refunds -----------------------------------------------------

async function loadOrders(traced = false) {
  const [orders, charges] = await Promise.all([api("GET", "/api/orders"), api("GET", "/api/payments")]);
  if (traced || !orders.ok) trace("List orders", "GET /api/orders", orders, ["order"]);
  state.charges = new Map((charges.ok ? charges.body?.charges || [] : []).map((c) => [c.id, c]));
  const box = $("orders");
  if (!orders.ok) {
    box.replaceChildren(el("p", { class: "empty error", text: describe(orders) }));
    return;
  }
  const list = orders.body?.orders || [];
  if (list.length === 0) {
    box.replaceChildren(el("p", { class: "empty", text: "No orders yet." }));
    return;
  }
  const mine = state.session.user.sub;
  const canRefund = has("support") || has("admin");
  const rows = list.map((order) => {
    const charge = order.charge_id ? state.charges.get(order.charge_id) : null;
    const refunded = charge?.refunded_cents || 0;
    const items = order.lines.map((l) => `${l.quantity} × ${l.sku}`).join(", ");
    const status = refunded > 0 ? (refunded >= (order.total_cents || 0) ? "refunded" : "partly refunded") : order.status;
    const refundButton =
      canRefund && order.charge_id && refunded < (order.total_cents || 0)
        ? el("button", { type: "button", class: "button small", text: "Refund", onclick: () => refund(order) })
        : null;
    return el(
      "tr",
      {},
      el("td", {}, el("code", { text: short(order.id) })),
      el("td", { text: order.owner === mine ? "you" : short(order.owner) }),
      el("td", { text: items }),
      el("td", { class: "num", text: order.total_cents == null ? "—" : money(order.total_cents) }),
      el("td", {}, el("span", { class: `pill ${status.replace(/ /g, "-")}`, text: status })),
      el("td", { text: new Date(order.created_at).toLocaleString() }),
      el("td", { class: "actions" }, refundButton),
    );
  });
  box.replaceChildren(
    el(
      "table",
      { class: "orders" },
      el("thead", {}, el("tr", {}, ...["Order", "Customer", "Items", "Total", "Status", "Placed", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows),
    ),
  );
}

async function refund(order) {
  const path = `/api/payments/${encodeURIComponent(order.charge_id)}/refund`;
  const body = { reason: `Refund of order ${short(order.id)} from the demo page` };
  const key = randomKey();
  const title = `Refund order ${short(order.id)}`;
  const result = await api("POST", path, body, key);
  trace(title, `POST /api/payments/…${short(order.charge_id)}/refund`, result, ["payment"]);
  if (result.stepUp) askForStepUp(title, "POST", path, body, key, result.stepUp);
  if (result.ok) await Promise.all([loadDashboard(), loadOrders()]);
}

// ---- The relay trace --------------------------------------------------------

// Which service of a call chain refused or failed, from the error answer:
// a relayed error names its upstream; order names the step that failed.
function failedService(body, services) {
  const known = (name) => (services.includes(name) ? name : null);
  const code = body?.error || "";
  return (
    known(body?.upstream) ||
    (code.endsWith("_unavailable") ? known(code.slice(0, -"_unavailable".length)) : null) ||
    (code === "payment_declined" ? known("payment") : null) ||
    (code === "insufficient_stock" ? known("inventory") : null) ||
    services[0]
  );
}

function describe(result) {
  const b = result.body || {};
  return b.error_description || b.message || b.error || `HTTP ${result.status}`;
}

// Builds the hops of an action: the browser, the gateway, then each service
// in `services`, with what each validated (from the gateway's x-baton-relay
// header and the services' "validated"/"relay" answers) or why it refused.
function trace(title, request, result, services) {
  const hops = [{ name: "Browser", status: "sent", ok: true, detail: `${request} with the session cookie`, facts: [] }];
  const relay = result.relay;
  const b = result.body || {};

  if (result.deniedByGateway || result.status === 0) {
    hops.push({ name: "Gateway", status: result.status || "error", ok: false, detail: describe(result), facts: [] });
    for (const service of services) hops.push({ name: service, status: "not reached", ok: null, detail: "", facts: [] });
  } else if (relay) {
    hops.push({
      name: "Gateway",
      status: "validated",
      ok: true,
      detail: `route ${relay.route} · ${relay.token === "bearer" ? "caller's bearer token" : "token from your session"}, ${
        relay.relay === "exchange" ? "exchanged at the IdP for one naming the route's service alone" : "relayed as is"
      }`,
      facts: [
        ["sub", short(relay.sub)],
        ["roles", (relay.roles || []).join(", ") || "—"],
        ["aud", (relay.aud || []).join(", ")],
        ["sent aud", (relay.relayed_aud || relay.aud || []).join(", ")],
        ["acted", (relay.relayed_actors || []).join(" ← ") || "—"],
        ["trace", short(relay.trace_id)],
      ],
    });
  }

  if (!result.deniedByGateway && result.status !== 0) {
    const validated = b.relay || (b.validated ? [b.validated] : []);
    const byService = new Map(validated.map((h) => [h.service, h]));
    const failed = result.ok ? null : failedService(b, services);
    let reached = true;
    for (const service of services) {
      const hop = byService.get(service);
      if (!reached) {
        hops.push({ name: service, status: "not reached", ok: null, detail: "", facts: [] });
      } else if (service === failed) {
        reached = false;
        hops.push({ name: service, status: result.status, ok: false, detail: describe(result), facts: [] });
      } else if (hop) {
        hops.push({
          name: service,
          status: "validated",
          ok: true,
          detail: "checked the token itself against the IdP's keys",
          facts: [
            ["sub", short(hop.sub)],
            ["roles", (hop.roles || []).join(", ") || "—"],
            ["aud", (hop.aud || []).join(", ") || "—"],
            ["acted", (hop.actors || []).join(" ← ") || "—"],
            ["jti", short(hop.jti)],
          ],
        });
      } else {
        // It answered (a service answers 401 without a valid token), with no identity in its answer.
        hops.push({ name: service, status: "validated", ok: true, detail: "validated the token and answered", facts: [] });
      }
    }
  }

  const chain = b.relay || [];
  const jtis = new Set(chain.map((h) => h.jti));
  const subs = new Set(chain.map((h) => h.sub));
  $("trace-action").replaceChildren(el("strong", { text: title }), " — ", result.ok ? `HTTP ${result.status}` : el("span", { class: "error", text: `HTTP ${result.status || "error"}` }));
  $("trace-time").textContent = new Date().toLocaleTimeString();
  $("trace").replaceChildren(...hops.map(renderHop));
  $("trace-footer").textContent =
    chain.length === 0
      ? ""
      : jtis.size === 1
        ? `Every service validated the same access token (jti ${short([...jtis][0])}), each on its own.`
        : subs.size === 1
          ? `Every service validated a token of its own for the same user (${jtis.size} tokens, each naming one service; "acted" is who exchanged it, latest first).`
          : "";
}

function renderHop(hop) {
  const node = $("hop-template").content.firstElementChild.cloneNode(true);
  node.classList.add(hop.ok === true ? "ok" : hop.ok === false ? "failed" : "skipped");
  node.querySelector(".hop-icon").textContent = hop.ok === true ? "✓" : hop.ok === false ? "✕" : "·";
  node.querySelector(".hop-name").textContent = hop.name;
  node.querySelector(".hop-status").textContent = String(hop.status);
  node.querySelector(".hop-detail").textContent = hop.detail;
  node.querySelector(".hop-facts").replaceChildren(...hop.facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, el("code", { text: v }))]));
  return node;
}

// ---- Start ------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("place-order").addEventListener("click", placeOrder);
  $("refresh-products").addEventListener("click", () => loadProducts(true));
  $("refresh-orders").addEventListener("click", () => loadOrders(true));
  $("refresh-dashboard").addEventListener("click", () => loadDashboard(true));
  loadSession().catch((error) => showBanner(`The gateway cannot be reached (${error}).`));
});
