-- One row per app. `addons` is the manifest's addons object as installed (JSON). While a call
-- is under way, `state` says which ('installing', 'updating', 'uninstalling') and, for an
-- update, `pending_addons` holds the new manifest: a coordinator that starts and finds such a
-- row finishes or undoes the call, so no app is ever left half-made.
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY,
    app_domain TEXT NOT NULL,
    addons TEXT NOT NULL,
    pending_addons TEXT,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
