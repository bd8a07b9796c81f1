//! The harness: slapd, the service in-process, gRPC clients, and ldap3 acting as an app.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

pub use fleet_shared::testkit::harness::{
    AddonTestClient, expect_status, provision, unique_app_id as app_id,
};
use fleet_shared::{
    auth::SendBearer,
    proto::{
        addon::{LdapOptions, ProvisionRequest, provision_request::Options},
        directory::{
            AddMemberRequest, CreateGroupRequest, CreateUserRequest, Group, ListGroupsRequest,
            ListUsersRequest, User, directory_client::DirectoryClient,
        },
    },
    testkit::{LdapServer, harness::TestSecrets},
};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use tonic::{
    Status,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

/// The slapd all tests of this process share.
pub fn slapd() -> &'static LdapServer {
    LdapServer::shared().expect("slapd (deploy/install-deps.sh installs it)")
}

/// A `Directory` client.
pub type DirectoryTestClient = DirectoryClient<InterceptedService<Channel, SendBearer>>;

/// The service, served in-process on a free port.
pub use fleet_shared::testkit::harness::Served as Service;

/// Serves against the shared slapd.
pub async fn start_service() -> Service {
    start_service_with(slapd()).await
}

/// Serves against `slapd`.
pub async fn start_service_with(slapd: &LdapServer) -> Service {
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
    Service::start::<fleet_ldap::Service>(secrets, env)
        .await
        .unwrap()
}

/// A `Directory` client of `service`, sending the right token.
pub async fn directory(service: &Service) -> DirectoryTestClient {
    directory_with(service, Some(&service.secrets.token)).await
}

/// A `Directory` client of `service`, sending `token`, or none.
pub async fn directory_with(service: &Service, token: Option<&str>) -> DirectoryTestClient {
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{}", service.port()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    DirectoryClient::with_interceptor(channel, SendBearer::new(token).unwrap())
}

pub fn request(app_id: &str) -> ProvisionRequest {
    ProvisionRequest {
        app_id: app_id.to_owned(),
        app_domain: "app.example.com".to_owned(),
        credential_generation: 0,
        options: Some(Options::Ldap(LdapOptions {})),
    }
}

pub async fn deprovision(client: &mut AddonTestClient, app_id: &str) -> Result<(), Status> {
    fleet_shared::testkit::harness::deprovision(client, app_id, "ldap").await
}

pub async fn list(client: &mut AddonTestClient) -> Vec<String> {
    fleet_shared::testkit::harness::list(client).await.unwrap()
}

/// A username no other test uses: `<stem>-<pid>-<n>`.
pub fn username(stem: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{stem}-{}-{n}", std::process::id())
}

pub const PASSWORD: &str = "correct horse battery";

/// A CreateUser request for `username` with a unique email and [`PASSWORD`].
pub fn new_user(username: &str) -> CreateUserRequest {
    let local: String = username
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let unique = self::username("m");
    CreateUserRequest {
        username: username.to_owned(),
        email: format!("{local}.{unique}@example.com"),
        display_name: "Ada Lovelace".to_owned(),
        given_name: "Ada".to_owned(),
        family_name: "Lovelace".to_owned(),
        alternate_email: format!("{unique}@backup.example.org"),
        password: Some(PASSWORD.to_owned()),
    }
}

pub async fn create_user(client: &mut DirectoryTestClient, username: &str) -> User {
    client
        .create_user(new_user(username))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
}

pub async fn create_group(client: &mut DirectoryTestClient, name: &str) -> Group {
    let request = CreateGroupRequest {
        name: name.to_owned(),
        gid_number: 0,
    };
    client
        .create_group(request)
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap()
}

pub async fn add_member(client: &mut DirectoryTestClient, group: &str, username: &str) {
    let request = AddMemberRequest {
        group: group.to_owned(),
        username: username.to_owned(),
    };
    client.add_member(request).await.unwrap();
}

pub async fn users(client: &mut DirectoryTestClient) -> Vec<User> {
    let request = ListUsersRequest {};
    client.list_users(request).await.unwrap().into_inner().users
}

pub async fn groups(client: &mut DirectoryTestClient) -> Vec<Group> {
    let request = ListGroupsRequest {};
    client
        .list_groups(request)
        .await
        .unwrap()
        .into_inner()
        .groups
}

/// An LDAP connection to `url` bound as `dn`, or the bind's result code.
pub async fn bind(url: &str, dn: &str, password: &str) -> Result<Ldap, u32> {
    let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(5));
    let (driver, mut ldap) = LdapConnAsync::with_settings(settings, url).await.unwrap();
    ldap3::drive!(driver);
    let result = ldap.simple_bind(dn, password).await.unwrap();
    if result.rc == 0 {
        Ok(ldap)
    } else {
        Err(result.rc)
    }
}

/// The app's own connection, bound with the bundle's credentials.
pub async fn bind_as_app(env: &HashMap<String, String>) -> Ldap {
    bind(
        &env["CLOUDRON_LDAP_URL"],
        &env["CLOUDRON_LDAP_BIND_DN"],
        &env["CLOUDRON_LDAP_BIND_PASSWORD"],
    )
    .await
    .expect("the app's bind account works")
}

/// The reference's login filter with `login` escaped the way an app must (RFC 4515).
pub fn login_filter(login: &str) -> String {
    "(&(objectclass=user)(|(username=%uid)(mail=%uid)))".replace("%uid", &ldap_escape(login))
}

/// Searches `base` as the app.
pub async fn search(
    app: &mut Ldap,
    base: &str,
    filter: &str,
    attributes: &[&str],
) -> Result<Vec<SearchEntry>, u32> {
    let result = app
        .search(base, Scope::Subtree, filter, attributes.to_vec())
        .await
        .unwrap();
    if result.1.rc != 0 {
        return Err(result.1.rc);
    }
    Ok(result.0.into_iter().map(SearchEntry::construct).collect())
}

/// Logs `login` in the way the reference suggests: as the app, search users with the login
/// filter, expect one entry, bind as it with `password`. The user's DN, or why not.
pub async fn login(
    env: &HashMap<String, String>,
    login: &str,
    password: &str,
) -> Result<String, String> {
    let mut app = bind_as_app(env).await;
    let found = search(
        &mut app,
        &env["CLOUDRON_LDAP_USERS_BASE_DN"],
        &login_filter(login),
        &["dn"],
    )
    .await
    .map_err(|rc| format!("search failed: {rc}"))?;
    let [entry] = found.as_slice() else {
        return Err(format!("{} entries found", found.len()));
    };
    bind(&env["CLOUDRON_LDAP_URL"], &entry.dn, password)
        .await
        .map(|_| entry.dn.clone())
        .map_err(|rc| format!("bind failed: {rc}"))
}

/// Values of `attribute` in `entry`, compared without case as LDAP does.
pub fn values(entry: &SearchEntry, attribute: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map(|(_, values)| values.clone())
        .unwrap_or_default()
}

/// The name of `app_id`'s bind account (`cn=<name>,ou=apps,dc=cloudron`).
pub fn resource_name(app_id: &str) -> String {
    fleet_shared::AppId::parse(app_id)
        .unwrap()
        .resource_name()
        .to_string()
}

/// The DN of `app_id`'s bind account.
pub fn app_dn(app_id: &str) -> String {
    format!("cn={},ou=apps,dc=cloudron", resource_name(app_id))
}

/// A connection bound as slapd's administrator.
pub async fn bind_as_admin() -> Ldap {
    bind(
        &slapd().url(),
        LdapServer::ADMIN_DN,
        slapd().admin_password(),
    )
    .await
    .expect("the admin binds")
}
