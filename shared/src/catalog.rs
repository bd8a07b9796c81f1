//! The one catalog of the fleet: its services (name, settings prefix, default port, the addons
//! each provisions) and the addons of the reference (which exist, which a service provisions,
//! which can only come with an install). Configuration, the coordinator's routing and manifest
//! checks and every service's defaults read it from here, so a new addon is one entry.

/// One service of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Its name ("docker-proxy"): health names, the coordinator's routing, `fleet-<name>`.
    /// Services named after their one addon (mysql, postgresql...) also derive its passwords
    /// from it, so a name never changes.
    pub name: &'static str,
    /// Its settings are `FLEET_<env>_*` ("DOCKER_PROXY"); the other services leave them alone.
    pub env: &'static str,
    /// The port it listens on unless `FLEET_<env>_LISTEN` says otherwise.
    pub default_port: u16,
    /// The addons it provisions, by manifest name; none for the coordinator.
    pub addons: &'static [&'static str],
}

/// The coordinator, which calls the addon services.
pub const COORDINATOR: Service = Service {
    name: "coordinator",
    env: "COORDINATOR",
    default_port: 50050,
    addons: &[],
};
/// The mysql service.
pub const MYSQL: Service = Service {
    name: "mysql",
    env: "MYSQL",
    default_port: 50051,
    addons: &["mysql"],
};
/// The postgresql service.
pub const POSTGRESQL: Service = Service {
    name: "postgresql",
    env: "POSTGRESQL",
    default_port: 50052,
    addons: &["postgresql"],
};
/// The mongodb service.
pub const MONGODB: Service = Service {
    name: "mongodb",
    env: "MONGODB",
    default_port: 50053,
    addons: &["mongodb"],
};
/// The redis service.
pub const REDIS: Service = Service {
    name: "redis",
    env: "REDIS",
    default_port: 50054,
    addons: &["redis"],
};
/// The ldap service (the ldap addon and the platform's user directory).
pub const LDAP: Service = Service {
    name: "ldap",
    env: "LDAP",
    default_port: 50055,
    addons: &["ldap"],
};
/// The oidc service: OpenID Connect clients, and the login in front of `proxyAuth` apps.
pub const OIDC: Service = Service {
    name: "oidc",
    env: "OIDC",
    default_port: 50056,
    addons: &["oidc", "proxyAuth"],
};
/// The mail service: sending, receiving and full mailboxes.
pub const MAIL: Service = Service {
    name: "mail",
    env: "MAIL",
    default_port: 50057,
    addons: &["sendmail", "recvmail", "email"],
};
/// The turn service.
pub const TURN: Service = Service {
    name: "turn",
    env: "TURN",
    default_port: 50058,
    addons: &["turn"],
};
/// The docker-proxy service.
pub const DOCKER_PROXY: Service = Service {
    name: "docker-proxy",
    env: "DOCKER_PROXY",
    default_port: 50059,
    addons: &["docker"],
};

/// Every service of the fleet, the coordinator first.
pub const SERVICES: [Service; 10] = [
    COORDINATOR,
    MYSQL,
    POSTGRESQL,
    MONGODB,
    REDIS,
    LDAP,
    OIDC,
    MAIL,
    TURN,
    DOCKER_PROXY,
];

/// Every addon of the reference, sorted; those no service provisions (`localstorage`,
/// `scheduler`, `tls`) the coordinator handles itself.
pub const ADDONS: [&str; 15] = [
    "docker",
    "email",
    "ldap",
    "localstorage",
    "mongodb",
    "mysql",
    "oidc",
    "postgresql",
    "proxyAuth",
    "recvmail",
    "redis",
    "scheduler",
    "sendmail",
    "tls",
    "turn",
];

/// Addons that cannot be added to an installed app (the reference explains why).
pub const INSTALL_ONLY: [&str; 2] = ["ldap", "proxyAuth"];

/// The addon services: every service that provisions an addon.
pub fn addon_services() -> impl Iterator<Item = &'static Service> {
    SERVICES.iter().filter(|service| !service.addons.is_empty())
}

/// The service that provisions `addon`, if any does.
pub fn service_of(addon: &str) -> Option<&'static Service> {
    SERVICES
        .iter()
        .find(|service| service.addons.contains(&addon))
}

/// The service named `name`.
pub fn service(name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|service| service.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::proto::addon::{
        DockerOptions, EmailOptions, LdapOptions, MongodbOptions, MysqlOptions, OidcOptions,
        PostgresqlOptions, ProxyAuthOptions, RecvmailOptions, RedisOptions, SendmailOptions,
        TurnOptions, provision_request::Options,
    };

    #[test]
    fn names_ports_and_prefixes_are_unique_and_consistent() {
        let names: BTreeSet<_> = SERVICES.iter().map(|s| s.name).collect();
        let envs: BTreeSet<_> = SERVICES.iter().map(|s| s.env).collect();
        let ports: BTreeSet<_> = SERVICES.iter().map(|s| s.default_port).collect();
        assert_eq!(
            (names.len(), envs.len(), ports.len()),
            (SERVICES.len(), SERVICES.len(), SERVICES.len())
        );
        for service in SERVICES {
            assert_eq!(service.env, service.name.to_uppercase().replace('-', "_"));
        }
    }

    #[test]
    fn every_served_addon_is_known_and_served_once() {
        let mut sorted = ADDONS;
        sorted.sort_unstable();
        assert_eq!(sorted, ADDONS, "ADDONS stays sorted: messages list it");
        let served: Vec<&str> = addon_services()
            .flat_map(|s| s.addons.iter().copied())
            .collect();
        let unique: BTreeSet<_> = served.iter().collect();
        assert_eq!(unique.len(), served.len(), "an addon has one service");
        for addon in served.iter().chain(INSTALL_ONLY.iter()) {
            assert!(ADDONS.contains(addon), "{addon} is not in ADDONS");
        }
    }

    /// The proto's options name only addons that a service provisions.
    #[test]
    fn every_typed_option_belongs_to_a_served_addon() {
        let options = [
            Options::Mysql(MysqlOptions::default()),
            Options::Postgresql(PostgresqlOptions::default()),
            Options::Mongodb(MongodbOptions::default()),
            Options::Redis(RedisOptions::default()),
            Options::Ldap(LdapOptions::default()),
            Options::Oidc(OidcOptions::default()),
            Options::Sendmail(SendmailOptions::default()),
            Options::Recvmail(RecvmailOptions::default()),
            Options::Email(EmailOptions::default()),
            Options::Turn(TurnOptions::default()),
            Options::Docker(DockerOptions::default()),
            Options::ProxyAuth(ProxyAuthOptions::default()),
        ];
        let named: BTreeSet<_> = options.iter().map(Options::addon_name).collect();
        let served: BTreeSet<_> = addon_services()
            .flat_map(|s| s.addons.iter().copied())
            .collect();
        assert_eq!(named, served);
    }

    #[test]
    fn lookups() {
        assert_eq!(service_of("sendmail"), Some(&MAIL));
        assert_eq!(service_of("proxyAuth"), Some(&OIDC));
        assert_eq!(service_of("tls"), None);
        assert_eq!(service("docker-proxy"), Some(&DOCKER_PROXY));
        assert_eq!(addon_services().count(), SERVICES.len() - 1);
    }
}
