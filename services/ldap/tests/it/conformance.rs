//! The addon contract's conformance suite (`fleet_shared::testkit::conformance`) for the ldap
//! addon: its backend is the shared slapd behind a proxy of the test's own, the app's client is
//! ldap3 binding with the returned DN and password. A bind account stores nothing, so the suite
//! checks that the credentials get in, not a value.

use std::{collections::HashSet, net::SocketAddr};

use fleet_shared::{
    proto::addon::{LdapOptions, PostgresqlOptions, provision_request::Options},
    testkit::{
        CuttableProxy,
        conformance::{Env, Fixture},
        harness::TestSecrets,
    },
};

use crate::support::*;

/// The shared slapd, reached by the service through a proxy it can be cut off by.
pub struct LdapFixture {
    proxy: CuttableProxy,
    /// Holds the file with slapd's admin password.
    files: TestSecrets,
}

const SQUATTER_PASSWORD: &str = "squatter-password";
const SQUATTER_OWNER: &str = "fleet-app:someone-else";

impl Fixture for LdapFixture {
    type Service = fleet_ldap::Service;
    const ADDON: &'static str = "ldap";
    const STORES_DATA: bool = false;

    async fn start() -> Self {
        let backend = SocketAddr::from(([127, 0, 0, 1], slapd().port()));
        let files = TestSecrets::new().unwrap();
        std::fs::write(files.path("ldap-admin"), slapd().admin_password()).unwrap();
        Self {
            proxy: CuttableProxy::start(backend).await.unwrap(),
            files,
        }
    }

    fn service_env(&self) -> Vec<(String, String)> {
        [
            (
                "FLEET_LDAP_ADMIN_URL",
                format!("ldap://127.0.0.1:{}", self.proxy.port()),
            ),
            (
                "FLEET_LDAP_ADMIN_PASSWORD_FILE",
                self.files.path("ldap-admin").display().to_string(),
            ),
            ("FLEET_LDAP_CONNECT_TIMEOUT_SECS", "2".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec()
    }

    fn options(&self) -> Option<Options> {
        Some(Options::Ldap(LdapOptions {}))
    }

    fn foreign_options(&self) -> Options {
        Options::Postgresql(PostgresqlOptions::default())
    }

    async fn write(&self, env: &Env, _value: &str) -> Result<(), String> {
        self.read(env).await.map(|_| ())
    }

    async fn read(&self, env: &Env) -> Result<Option<String>, String> {
        bind(
            &env["CLOUDRON_LDAP_URL"],
            &env["CLOUDRON_LDAP_BIND_DN"],
            &env["CLOUDRON_LDAP_BIND_PASSWORD"],
        )
        .await
        .map(|_| None)
        .map_err(|rc| format!("bind refused (rc {rc})"))
    }

    async fn squat(&self, app_id: &str) {
        let dn = app_dn(app_id);
        let name = resource_name(app_id);
        let attributes = vec![
            ("objectClass", HashSet::from(["appAccount"])),
            ("cn", HashSet::from([name.as_str()])),
            ("description", HashSet::from([SQUATTER_OWNER])),
            ("userPassword", HashSet::from([SQUATTER_PASSWORD])),
        ];
        let added = bind_as_admin().await.add(&dn, attributes).await.unwrap();
        assert_eq!(added.rc, 0, "planting {dn}: {added:?}");
    }

    async fn squat_intact(&self, app_id: &str) -> bool {
        let dn = app_dn(app_id);
        let (entries, result) = bind_as_admin()
            .await
            .search(
                &dn,
                ldap3::Scope::Base,
                "(objectClass=*)",
                vec!["description"],
            )
            .await
            .unwrap()
            .success()
            .map(|(entries, result)| (entries, Some(result)))
            .unwrap_or_default();
        let descriptions: Vec<String> = entries
            .into_iter()
            .map(ldap3::SearchEntry::construct)
            .flat_map(|entry| entry.attrs.get("description").cloned().unwrap_or_default())
            .collect();
        let squatter_binds = bind(&slapd().url(), &dn, SQUATTER_PASSWORD).await.is_ok();
        result.is_some() && descriptions == [SQUATTER_OWNER] && squatter_binds
    }

    async fn cut_backend(&self) {
        self.proxy.cut();
    }

    async fn restore_backend(&self) {
        self.proxy.restore();
    }

    fn secrets(&self) -> Vec<String> {
        vec![slapd().admin_password().to_owned()]
    }
}

fleet_shared::addon_conformance!(LdapFixture);
