//! The harness: slapd with users made through the ldap service, the oidc service in-process
//! (SQLite state of its own, HTTP on a free port), and a browser and relying party of
//! `openidconnect` over reqwest with a cookie jar.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use fleet_oidc::directory::{DirectorySettings, UserDirectory};
use fleet_shared::{
    Secret,
    auth::SendBearer,
    proto::{
        addon::{
            LdapOptions, OidcOptions, ProvisionRequest, TokenSignatureAlgorithm,
            provision_request::Options,
        },
        directory::{
            AddMemberRequest, CreateGroupRequest, CreateUserRequest, DeleteUserRequest,
            ListUsersRequest, User as DirectoryUser, directory_client::DirectoryClient,
        },
    },
    testkit::{
        LdapServer,
        harness::{Served, TestSecrets, eventually, provision, unique_app_id},
    },
};
use openidconnect::{
    ClientId, ClientSecret, IssuerUrl, RedirectUrl,
    core::{CoreClient, CoreProviderMetadata},
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";

/// The slapd all tests of this process share.
pub fn slapd() -> &'static LdapServer {
    LdapServer::shared().expect("slapd (deploy/install-deps.sh installs it)")
}

/// A name no other test uses: `<stem>-<pid>-<n>`.
pub fn unique(stem: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{stem}-{}-{n}", std::process::id())
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

type Directory = DirectoryClient<InterceptedService<Channel, SendBearer>>;

/// The platform's users: the ldap service in-process on `slapd`, its Directory API, and an
/// app bind account of the ldap addon for the provider to read users with (least privilege,
/// as `FLEET_OIDC_LDAP_BIND_DN` would name one in production).
pub struct Users {
    service: Served,
    directory: Directory,
    /// What the provider binds with.
    pub settings: DirectorySettings,
}

impl Users {
    /// The ldap service on `slapd`.
    pub async fn start(slapd: &LdapServer) -> Self {
        let secrets = TestSecrets::new().unwrap();
        std::fs::write(secrets.path("ldap-admin"), slapd.admin_password()).unwrap();
        let env = [
            ("FLEET_LDAP_ADMIN_URL", slapd.url()),
            (
                "FLEET_LDAP_ADMIN_PASSWORD_FILE",
                secrets.path("ldap-admin").display().to_string(),
            ),
            ("FLEET_LDAP_CONNECT_TIMEOUT_SECS", "3".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value));
        let service = Served::start::<fleet_ldap::Service>(secrets, env)
            .await
            .unwrap();
        let channel = Channel::from_shared(format!("http://127.0.0.1:{}", service.port()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bearer = SendBearer::new(Some(&service.secrets.token)).unwrap();
        let directory = DirectoryClient::with_interceptor(channel, bearer);
        let request = ProvisionRequest {
            app_id: unique_app_id("oidc"),
            app_domain: "login.example.com".to_owned(),
            credential_generation: 0,
            options: Some(Options::Ldap(LdapOptions {})),
        };
        let env = provision(&mut service.client().await, request)
            .await
            .unwrap();
        let settings = DirectorySettings {
            url: slapd.url(),
            bind_dn: env["CLOUDRON_LDAP_BIND_DN"].clone(),
            bind_password: Secret::new(env["CLOUDRON_LDAP_BIND_PASSWORD"].clone()),
            timeout: Duration::from_secs(5),
        };
        Self {
            service,
            directory,
            settings,
        }
    }

    /// Creates `username` with `password` (or none) and a unique email.
    pub async fn create_user(&mut self, username: &str, password: Option<&str>) -> DirectoryUser {
        let request = CreateUserRequest {
            username: username.to_owned(),
            email: format!("{}@example.com", unique("mail")),
            display_name: "Ada Lovelace".to_owned(),
            given_name: "Ada".to_owned(),
            family_name: "Lovelace".to_owned(),
            alternate_email: String::new(),
            password: password.map(str::to_owned),
        };
        let created = self.directory.create_user(request).await.unwrap();
        created.into_inner().user.unwrap()
    }

    /// Creates a user with [`PASSWORD`], a unique name and a unique email.
    pub async fn new_user(&mut self) -> DirectoryUser {
        let username = unique("user");
        self.create_user(&username, Some(PASSWORD)).await
    }

    /// Removes `username` from the directory.
    pub async fn delete_user(&mut self, username: &str) {
        let request = DeleteUserRequest {
            username: username.to_owned(),
        };
        self.directory.delete_user(request).await.unwrap();
    }

    /// Creates the group `name`.
    pub async fn create_group(&mut self, name: &str) {
        let request = CreateGroupRequest {
            name: name.to_owned(),
            gid_number: 0,
        };
        self.directory.create_group(request).await.unwrap();
    }

    /// Makes `username` a member of `group`.
    pub async fn add_member(&mut self, group: &str, username: &str) {
        let request = AddMemberRequest {
            group: group.to_owned(),
            username: username.to_owned(),
        };
        self.directory.add_member(request).await.unwrap();
    }

    /// The Directory API, for tests that change or read entries.
    pub fn directory(&mut self) -> &mut Directory {
        &mut self.directory
    }

    /// `username` as the ldap service lists it.
    pub async fn listed(&mut self, username: &str) -> DirectoryUser {
        let listed = self.directory.list_users(ListUsersRequest {}).await;
        let users = listed.unwrap().into_inner().users;
        users.into_iter().find(|u| u.username == username).unwrap()
    }

    /// A [`UserDirectory`] reading as the provider does.
    pub fn user_directory(&self) -> UserDirectory {
        UserDirectory::new(self.settings.clone())
    }

    /// Stops the ldap service.
    pub async fn stop(self) {
        self.service.stop().await;
    }
}

/// The oidc service in-process: gRPC on a free port, the provider on `issuer`.
pub struct Provider {
    pub service: Served,
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    port: u16,
    state: tempfile::TempDir,
    extra: Vec<(String, String)>,
}

impl Provider {
    /// The provider reading `users`, with SQLite state of its own and `extra` settings.
    pub async fn start(users: &Users, extra: &[(&str, &str)]) -> Self {
        let extra = extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let secrets = TestSecrets::new().unwrap();
        Self::launch(
            users,
            tempfile::tempdir().unwrap(),
            free_port(),
            secrets,
            extra,
        )
        .await
    }

    /// Stops the provider and starts it again on the same issuer, state, master key and token
    /// (a restart, or an upgrade, as operators do them).
    pub async fn restart(self, users: &Users) -> Self {
        let Self {
            service,
            port,
            state,
            extra,
            ..
        } = self;
        let secrets = TestSecrets::new().unwrap();
        for file in ["master.key", "token"] {
            std::fs::copy(service.secrets.path(file), secrets.path(file)).unwrap();
        }
        service.stop().await;
        Self::launch(users, state, port, secrets, extra).await
    }

    async fn launch(
        users: &Users,
        state: tempfile::TempDir,
        port: u16,
        secrets: TestSecrets,
        extra: Vec<(String, String)>,
    ) -> Self {
        std::fs::write(
            secrets.path("ldap-bind"),
            users.settings.bind_password.expose(),
        )
        .unwrap();
        let issuer = format!("http://127.0.0.1:{port}");
        let state_url = format!("sqlite://{}", state.path().join("oidc.db").display());
        let mut env: Vec<(String, String)> = [
            ("FLEET_OIDC_ISSUER", issuer.clone()),
            ("FLEET_OIDC_HTTP_LISTEN", format!("127.0.0.1:{port}")),
            ("FLEET_OIDC_STATE_URL", state_url),
            ("FLEET_OIDC_LDAP_URL", users.settings.url.clone()),
            ("FLEET_OIDC_LDAP_BIND_DN", users.settings.bind_dn.clone()),
            (
                "FLEET_OIDC_LDAP_BIND_PASSWORD_FILE",
                secrets.path("ldap-bind").display().to_string(),
            ),
            ("FLEET_OIDC_APP_SCHEME", "http".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        for (name, value) in &extra {
            env.retain(|(existing, _)| existing != name);
            env.push((name.clone(), value.clone()));
        }
        let service = Served::start::<fleet_oidc::Service>(secrets, env)
            .await
            .unwrap();
        let provider = Self {
            service,
            issuer,
            port,
            state,
            extra,
        };
        let discovery = provider.url("/.well-known/openid-configuration");
        assert!(
            eventually(Duration::from_secs(30), || async {
                reqwest::get(&discovery)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await,
            "the provider does not answer on {discovery}"
        );
        provider
    }

    /// The URL of its SQLite state, for tests that look at or age what it stores.
    pub fn state_url(&self) -> String {
        format!("sqlite://{}", self.state.path().join("oidc.db").display())
    }

    /// `<issuer><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Provisions an oidc client for a new app on `domain` with these redirect paths.
    pub async fn new_app(
        &self,
        domain: &str,
        login_redirect_uris: &[&str],
        algorithm: TokenSignatureAlgorithm,
    ) -> App {
        let app_id = unique_app_id("rp");
        let request = ProvisionRequest {
            app_id: app_id.clone(),
            app_domain: domain.to_owned(),
            credential_generation: 0,
            options: Some(Options::Oidc(OidcOptions {
                login_redirect_uris: login_redirect_uris
                    .iter()
                    .map(|u| (*u).to_owned())
                    .collect(),
                logout_redirect_uri: "/bye".to_owned(),
                token_signature_algorithm: algorithm.into(),
            })),
        };
        let env = provision(&mut self.service.client().await, request)
            .await
            .unwrap();
        App { app_id, env }
    }
}

/// The app as `openidconnect` builds it from discovery (see [`App::relying_party`]).
pub type RelyingParty = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// An app with its oidc variables.
pub struct App {
    pub app_id: String,
    pub env: HashMap<String, String>,
}

impl App {
    /// `CLOUDRON_OIDC_<suffix>`.
    pub fn var(&self, suffix: &str) -> &str {
        &self.env[&format!("CLOUDRON_OIDC_{suffix}")]
    }

    /// The app as an `openidconnect` relying party, from discovery, returning to `redirect`.
    pub async fn relying_party(&self, http: &reqwest::Client, redirect: &str) -> RelyingParty {
        let issuer = IssuerUrl::new(self.var("ISSUER").to_owned()).unwrap();
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .unwrap();
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.var("CLIENT_ID").to_owned()),
            Some(ClientSecret::new(self.var("CLIENT_SECRET").to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).unwrap())
    }
}

/// An authorization URL of `rp` with its own state and nonce, scope `openid` only.
pub fn authorize_url(
    rp: &RelyingParty,
) -> (
    openidconnect::url::Url,
    openidconnect::CsrfToken,
    openidconnect::Nonce,
) {
    rp.authorize_url(
        openidconnect::AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
        openidconnect::CsrfToken::new_random,
        openidconnect::Nonce::new_random,
    )
    .url()
}

/// A browser: a cookie jar, and redirects left for the test to follow (or not).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The hidden fields of the login page `html`, HTML-unescaped.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|input| {
            let name = input.split("name=\"").nth(1)?.split('"').next()?;
            let value = input.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), unescape(value)))
        })
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Opens `auth_url` in `browser`, submits the login form as `login`/`password`, and returns
/// the final response of the form post (a redirect to the app on success).
pub async fn sign_in(
    browser: &reqwest::Client,
    provider: &Provider,
    auth_url: &str,
    login: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser.get(auth_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the login page");
    let html = page.text().await.unwrap();
    let mut form = hidden_fields(&html);
    form.push(("username".to_owned(), login.to_owned()));
    form.push(("password".to_owned(), password.to_owned()));
    browser
        .post(provider.url("/openid/auth/login"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// The query parameters of a redirect's `Location`.
pub fn redirect_params(response: &reqwest::Response) -> (String, HashMap<String, String>) {
    assert_eq!(response.status(), 303, "expected a redirect");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (base, query) = location.split_once('?').unwrap_or((&location, ""));
    let params = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (base.to_owned(), params)
}
