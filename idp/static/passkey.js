// Passkeys on the IdP's pages: the one script they load (CSP script-src 'self').
//
// A form marked data-passkey="create" or data-passkey="get" is carried out by
// the browser's WebAuthn API instead of being posted as it stands: the script
// asks the form's data-options URL (with the form's CSRF token) for a
// ceremony, lets the browser and its authenticator answer it, puts the
// ceremony id and the answer (JSON, WebAuthn Level 3 toJSON) into the form's
// hidden fields and posts the form. The server checks everything; this file
// only carries data between the server and navigator.credentials. The forms
// stay hidden in a browser without WebAuthn.
'use strict';

(() => {
  const supported = typeof window.PublicKeyCredential === 'function'
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'
    && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';

  for (const form of document.querySelectorAll('form[data-passkey]')) {
    if (!supported) continue;
    form.hidden = false;
    const status = form.querySelector('.passkey-status');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      status.textContent = '';
      try {
        const options = await fetch(form.dataset.options, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ csrf_token: form.elements.csrf_token.value }),
        });
        const answer = await options.json();
        if (!options.ok) throw new Error(answer.error_description ?? 'the server refused');
        const credential = form.dataset.passkey === 'create'
          ? await navigator.credentials.create({
            publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(answer.publicKey),
          })
          : await navigator.credentials.get({
            publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(answer.publicKey),
          });
        form.elements.ceremony.value = answer.ceremony;
        form.elements.credential.value = JSON.stringify(credential.toJSON());
        form.submit();
      } catch (e) {
        // NotAllowedError: the person cancelled, or no passkey was there.
        status.textContent = e.name === 'NotAllowedError'
          ? 'No passkey was used.'
          : `The passkey could not be used: ${e.message}`;
        button.disabled = false;
      }
    });
  }
})();
