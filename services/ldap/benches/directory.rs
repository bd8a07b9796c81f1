//! The ldap service against the same LDAP operations issued directly, on a private slapd.
//!
//!     cargo bench -p fleet-ldap --bench directory [-- ROUNDS]
//!
//! Each round creates a user and provisions an app both ways (alternating, so drift hits both
//! alike), re-provisions the service's app (the path every app start takes) and logs the user in
//! the way apps do (search as the app, then bind as the user).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use fleet_shared::{
    auth::SendBearer,
    proto::{
        addon::{LdapOptions, ProvisionRequest, provision_request::Options},
        directory::{CreateUserRequest, directory_client::DirectoryClient},
    },
    testkit::{
        LdapServer,
        bench::Samples,
        harness::{InProcess, TestSecrets, addon_client},
    },
};
use ldap3::{Ldap, LdapConnAsync, Scope, exop::PasswordModify};
use tonic::transport::Endpoint;

const PASSWORD: &str = "correct horse battery";

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = LdapServer::start().expect("slapd");
    runtime.block_on(bench(&server, rounds));
}

async fn bench(server: &LdapServer, rounds: usize) {
    let secrets = TestSecrets::new().unwrap();
    std::fs::write(secrets.path("ldap-admin"), server.admin_password()).unwrap();
    let mut env = secrets.common_env();
    env.push(("FLEET_LDAP_ADMIN_URL".to_owned(), server.url()));
    env.push((
        "FLEET_LDAP_ADMIN_PASSWORD_FILE".to_owned(),
        secrets.path("ldap-admin").display().to_string(),
    ));
    env.push(("FLEET_LOG".to_owned(), "warn".to_owned()));
    let service = InProcess::serve::<fleet_ldap::Service>(env).await.unwrap();
    let port = service.addr.port();
    let mut addon = addon_client(port, Some(&secrets.token)).await.unwrap();
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut directory =
        DirectoryClient::with_interceptor(channel, SendBearer::new(Some(&secrets.token)).unwrap());
    let mut admin = connect(&server.url(), LdapServer::ADMIN_DN, server.admin_password()).await;
    let provision = |app: String| ProvisionRequest {
        app_id: app,
        app_domain: String::new(),
        credential_generation: 0,
        options: Some(Options::Ldap(LdapOptions {})),
    };
    let user = |name: String| CreateUserRequest {
        email: format!("{name}@example.com"),
        username: name,
        password: Some(PASSWORD.to_owned()),
        ..Default::default()
    };
    let env = addon
        .provision(provision("bench-app".to_owned()))
        .await
        .unwrap()
        .into_inner()
        .env;

    let mut samples: [Samples; 6] = Default::default();
    let [
        user_service,
        user_direct,
        app_service,
        app_direct,
        app_again,
        login_path,
    ] = &mut samples;
    for round in 0..rounds {
        let name = format!("user{round}");
        user_service
            .time(directory.create_user(user(name.clone())))
            .await
            .unwrap();
        user_direct
            .time(add_user_directly(&mut admin, &format!("direct{round}")))
            .await;
        let app = format!("app-{round}");
        app_service
            .time(addon.provision(provision(app.clone())))
            .await
            .unwrap();
        app_direct
            .time(add_app_directly(&mut admin, &format!("direct-{round}")))
            .await;
        app_again
            .time(addon.provision(provision(app)))
            .await
            .unwrap();
        login_path.time(login(&env, &name)).await;
    }
    println!("ldap, {rounds} rounds:");
    println!(
        "{}",
        user_service.report("service CreateUser (with password)")
    );
    println!("{}", user_direct.report("direct add + Password Modify"));
    println!("{}", app_service.report("service Provision (new app)"));
    println!("{}", app_direct.report("direct add + Password Modify"));
    println!("{}", app_again.report("service Provision (existing app)"));
    println!("{}", login_path.report("app login (bind, search, bind)"));
    println!(
        "ratio service/direct (mean): CreateUser {:.2}, Provision {:.2}",
        user_service.ratio_to(user_direct),
        app_service.ratio_to(app_direct)
    );
    service.stop().await;
}

async fn connect(url: &str, dn: &str, password: &str) -> Ldap {
    let (driver, mut ldap) = LdapConnAsync::new(url).await.unwrap();
    ldap3::drive!(driver);
    ldap.simple_bind(dn, password)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap
}

/// What an administrator would do by hand for CreateUser.
async fn add_user_directly(admin: &mut Ldap, name: &str) {
    let dn = format!("cn={name},ou=users,dc=cloudron");
    let mail = format!("{name}@example.com");
    let attributes = vec![
        (
            "objectClass",
            HashSet::from([
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "user",
            ]),
        ),
        ("cn", HashSet::from([name])),
        ("uid", HashSet::from([name])),
        ("username", HashSet::from([name])),
        ("sAMAccountName", HashSet::from([name])),
        ("objectCategory", HashSet::from(["person"])),
        ("mail", HashSet::from([mail.as_str()])),
        ("displayName", HashSet::from([name])),
        ("sn", HashSet::from([name])),
    ];
    admin.add(&dn, attributes).await.unwrap().success().unwrap();
    set_password(admin, &dn).await;
}

/// What an administrator would do by hand for Provision.
async fn add_app_directly(admin: &mut Ldap, app: &str) {
    let name = fleet_shared::AppId::parse(app)
        .unwrap()
        .resource_name()
        .to_string();
    let dn = format!("cn={name},ou=apps,dc=cloudron");
    let description = format!("fleet-app:{app}");
    let attributes = vec![
        ("objectClass", HashSet::from(["appAccount"])),
        ("cn", HashSet::from([name.as_str()])),
        ("description", HashSet::from([description.as_str()])),
    ];
    admin.add(&dn, attributes).await.unwrap().success().unwrap();
    set_password(admin, &dn).await;
}

async fn set_password(admin: &mut Ldap, dn: &str) {
    let exop = PasswordModify {
        user_id: Some(dn),
        old_pass: None,
        new_pass: Some(PASSWORD),
    };
    admin.extended(exop).await.unwrap().success().unwrap();
}

/// The reference's login: bind as the app, find the user by the filter, bind as it.
async fn login(env: &std::collections::HashMap<String, String>, name: &str) {
    let url = &env["CLOUDRON_LDAP_URL"];
    let mut app = connect(
        url,
        &env["CLOUDRON_LDAP_BIND_DN"],
        &env["CLOUDRON_LDAP_BIND_PASSWORD"],
    )
    .await;
    let filter = format!(
        "(&(objectclass=user)(|(username={0})(mail={0})))",
        ldap3::ldap_escape(name)
    );
    let (found, _) = app
        .search(
            &env["CLOUDRON_LDAP_USERS_BASE_DN"],
            Scope::Subtree,
            &filter,
            vec!["dn"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(found.len(), 1);
    let dn = ldap3::SearchEntry::construct(found.into_iter().next().unwrap()).dn;
    connect(url, &dn, PASSWORD).await;
}
