//! What provisioning means here: an OpenID client per app (`oidc`), and a client behind each
//! app's proxyAuth wall (`proxyAuth`), written to the state store that the provider reads.

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    catalog,
    env_bundle::{EnvBundle, EnvPrefix},
    error::AddonError,
};

use crate::{
    clients::{ClientSecrets, client_id},
    config::{Config, Issuer},
    provider::paths,
    request::{ClientKind, ProvisionSpec},
    store::{Client, Removal, Store, Upsert},
};

/// Writes and removes the apps' clients.
pub struct Provisioner {
    store: Store,
    secrets: ClientSecrets,
    issuer: Issuer,
    prefix: EnvPrefix,
    provider_name: String,
    app_scheme: String,
}

impl Provisioner {
    /// Clients in `store`, for the provider `config` describes.
    pub fn new(config: &Config, store: Store) -> Self {
        Self {
            store,
            secrets: ClientSecrets::new(config.common.master_key.clone()),
            issuer: config.issuer.clone(),
            prefix: config.common.env_prefix.clone(),
            provider_name: config.provider_name.clone(),
            app_scheme: config.app_scheme.clone(),
        }
    }

    /// The client `spec` asks for.
    fn client(&self, spec: &ProvisionSpec) -> Client {
        let origin = format!("{}://{}", self.app_scheme, spec.app_domain);
        let addon = spec.kind.addon();
        let (algorithm, redirect_uris, post_logout, wall) = match &spec.kind {
            ClientKind::Oidc {
                login_redirect_uris,
                logout_redirect_uri,
                algorithm,
            } => {
                let redirect_uris = login_redirect_uris
                    .iter()
                    .map(|uri| {
                        if uri.starts_with('/') {
                            format!("{origin}{uri}")
                        } else {
                            uri.clone()
                        }
                    })
                    .collect();
                let logout = match logout_redirect_uri.as_str() {
                    "" => "/",
                    path => path,
                };
                (
                    *algorithm,
                    redirect_uris,
                    vec![format!("{origin}{logout}")],
                    None,
                )
            }
            ClientKind::ProxyAuth(wall) => (
                crate::keys::Algorithm::Rs256,
                vec![format!("{origin}{}", paths::APP_LOGIN)],
                vec![format!("{origin}/")],
                Some(wall.clone()),
            ),
        };
        Client {
            client_id: client_id(&spec.app, addon),
            app_id: spec.app.as_str().to_owned(),
            addon: addon.to_owned(),
            app_domain: spec.app_domain.clone(),
            generation: spec.generation,
            algorithm,
            redirect_uris,
            post_logout_redirect_uris: post_logout,
            wall,
        }
    }

    /// The app's variables for `client`.
    fn env(&self, spec: &ProvisionSpec, client: &Client) -> EnvBundle {
        let mut env = EnvBundle::new();
        if client.wall.is_some() {
            // The wall needs nothing from the app.
            return env;
        }
        let secret = self
            .secrets
            .secret(&spec.app, &client.addon, client.generation);
        let var = |suffix: &str| self.prefix.var(suffix);
        env.insert(var("OIDC_PROVIDER_NAME"), self.provider_name.clone());
        env.insert(var("OIDC_ISSUER"), self.issuer.as_str().to_owned());
        for (suffix, path) in [
            ("OIDC_DISCOVERY_URL", paths::DISCOVERY),
            ("OIDC_AUTH_ENDPOINT", paths::AUTHORIZE),
            ("OIDC_TOKEN_ENDPOINT", paths::TOKEN),
            ("OIDC_KEYS_ENDPOINT", paths::JWKS),
            ("OIDC_PROFILE_ENDPOINT", paths::USERINFO),
        ] {
            env.insert(var(suffix), self.issuer.url(path));
        }
        env.insert(var("OIDC_CLIENT_ID"), client.client_id.clone());
        env.insert(var("OIDC_CLIENT_SECRET"), secret.expose().clone());
        env
    }
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::OIDC;
    const BACKEND: Option<&'static str> = Some("The OIDC state store");
    type Spec = ProvisionSpec;

    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let client = self.client(&spec);
        match self.store.upsert_client(&client).await? {
            Upsert::Written => Ok(self.env(&spec, &client)),
            Upsert::Taken { .. } => Err(AddonError::FailedPrecondition(format!(
                "client id {} is held by another app; nothing was changed",
                client.client_id
            ))),
        }
    }

    async fn deprovision(&self, app: AppId, addon: &'static str) -> Result<(), AddonError> {
        let client_id = client_id(&app, addon);
        match self.store.remove_client(app.as_str(), &client_id).await? {
            Removal::Removed => Ok(()),
            Removal::Taken { .. } => Err(AddonError::FailedPrecondition(format!(
                "client id {client_id} is held by another app; nothing was removed"
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<String>, AddonError> {
        self.store.app_ids().await
    }

    async fn ping(&self) -> bool {
        self.store.ping().await
    }
}
