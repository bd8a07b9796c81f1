//! The mail service's settings (`FLEET_MAIL_*`) on top of the common ones.

use std::{net::SocketAddr, path::PathBuf};

use fleet_shared::{
    catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    domain::is_domain_name,
    ldap::DirectoryAccount,
    service::ServiceConfig,
};

/// The first of the mail server's ports unless `FLEET_MAIL_PORT` says otherwise.
pub const DEFAULT_BASE_PORT: u16 = 2525;

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_MAIL_DIR`: the mail server's directory, as `deploy/mail/cluster.sh init` made it
    /// (required): the accounts store, the mail domains and the mailboxes are in it.
    pub mail_dir: PathBuf,
    /// `FLEET_MAIL_SERVER_HOST`: the mail server's internal name apps connect to (default
    /// `127.0.0.1`).
    pub server_host: String,
    /// `FLEET_MAIL_SERVER_FQDN`: the name the server's certificate is for; default
    /// `mail.<primary mail domain>`, as `cluster.sh` names it.
    pub server_fqdn: Option<String>,
    /// `FLEET_MAIL_PORT`: the port `cluster.sh run DIR PORT` was given (default 2525); the
    /// others follow it.
    pub ports: Ports,
    /// `FLEET_MAIL_MILTER_LISTEN`: where the From-header check listens for Postfix
    /// (`MAIL_MILTER=inet:HOST:PORT` of `cluster.sh run`); unset, no check runs here.
    pub milter_listen: Option<SocketAddr>,
    /// `FLEET_MAIL_LDAP_URL`, `_LDAP_BIND_DN`, `_LDAP_BIND_PASSWORD_FILE`,
    /// `_LDAP_TIMEOUT_SECS`: the directory whose users' addresses no app may be given (the
    /// one the mail server logs users in against); unset, that is not checked.
    pub directory: Option<DirectoryAccount>,
}

/// The mail server's ports, in `cluster.sh`'s order from its base port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// SMTP submission without TLS or STARTTLS.
    pub smtp: u16,
    /// SMTP submission with implicit TLS.
    pub smtps: u16,
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
    /// ManageSieve.
    pub sieve: u16,
}

impl Ports {
    /// The ports of a server run on `base` (`cluster.sh run DIR base`), if they fit.
    pub fn from_base(base: u16) -> Option<Self> {
        let at = |offset: u16| base.checked_add(offset).filter(|_| base > 0);
        Some(Self {
            smtp: at(0)?,
            smtps: at(1)?,
            imap: at(2)?,
            imaps: at(3)?,
            pop3: at(4)?,
            pop3s: at(5)?,
            sieve: at(6)?,
        })
    }
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::MAIL.default_port);
        let mail_dir = env.required(
            "FLEET_MAIL_DIR",
            "the mail server's directory (deploy/mail/cluster.sh init DIR)",
        );
        let server_host = env
            .optional("FLEET_MAIL_SERVER_HOST")
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let server_fqdn = env.optional("FLEET_MAIL_SERVER_FQDN");
        if let Some(fqdn) = &server_fqdn
            && !is_domain_name(fqdn)
        {
            env.problem(format!("FLEET_MAIL_SERVER_FQDN is no host name: {fqdn:?}"));
        }
        let base = env.parsed("FLEET_MAIL_PORT", DEFAULT_BASE_PORT);
        let ports = Ports::from_base(base).filter(|_| base <= u16::MAX - 7);
        if ports.is_none() {
            env.problem(format!(
                "FLEET_MAIL_PORT must leave room for the 7 ports after it: {base}"
            ));
        }
        let milter_listen = env.parsed_optional("FLEET_MAIL_MILTER_LISTEN");
        let directory = DirectoryAccount::read(&mut env, "FLEET_MAIL", false);
        env.finish()?;
        let (Some(common), Some(mail_dir), Some(ports)) = (common, mail_dir, ports) else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            common,
            mail_dir: PathBuf::from(mail_dir),
            server_host,
            server_fqdn,
            ports,
            milter_listen,
            directory,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_base_as_cluster_sh_opens_them() {
        let ports = Ports::from_base(2525);
        assert_eq!(
            ports,
            Some(Ports {
                smtp: 2525,
                smtps: 2526,
                imap: 2527,
                imaps: 2528,
                pop3: 2529,
                pop3s: 2530,
                sieve: 2531,
            })
        );
        assert_eq!(Ports::from_base(0), None);
        assert_eq!(Ports::from_base(u16::MAX - 2), None);
    }
}
