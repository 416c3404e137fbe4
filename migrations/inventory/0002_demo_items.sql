-- Demo catalogue. A data migration rather than a start-up seed: it is versioned,
-- applied exactly once per database (so an admin's later stock or price changes
-- are never overwritten by a restart), and every test database gets it too.
-- `gold-keyboard` costs more than payment's default decline threshold
-- (PAYMENT_DECLINE_ABOVE_CENTS = 50000), so ordering it shows a declined charge.
INSERT INTO items (sku, name, description, price_cents, stock) VALUES
    ('baton-mug',     'Baton mug',             'Stoneware mug, 330 ml, with the relay baton logo.', 1200, 100),
    ('baton-tee',     'Baton T-shirt',         'Organic cotton, unisex.',                            2500, 50),
    ('jwt-stickers',  'JWT sticker pack',      'Header, payload and signature, one sticker each.',    300, 500),
    ('oidc-handbook', 'OpenID Connect handbook', 'A printed field guide to OIDC and OAuth 2.',        3900, 20),
    ('gold-keyboard', 'Gold-plated keyboard',  'For the admin who has everything. Always declined at demo settings.', 75000, 3)
ON CONFLICT (sku) DO NOTHING;
