//! What provisioning means here: an SMTP account per app (`sendmail`), a mailbox with IMAP and
//! POP3 access per app (`recvmail`), and the server's coordinates for webmail apps (`email`),
//! whose users log in with their own directory accounts.

use std::{io::ErrorKind, os::unix::fs::MetadataExt};

use fleet_shared::{
    AppId,
    addon::AddonBackend,
    catalog,
    credentials::MasterKey,
    env_bundle::{EnvBundle, EnvPrefix},
    error::AddonError,
};

use crate::{
    accounts::{Accounts, Put, Removal},
    config::{Config, Ports},
    directory::Directory,
    mailbox::{Address, Domains, Layout, LocalPart},
    request::{MailKind, Mailbox, ProvisionSpec},
};

/// Writes and removes the apps' accounts and mailboxes.
pub struct Provisioner {
    layout: Layout,
    accounts: Accounts,
    master_key: MasterKey,
    prefix: EnvPrefix,
    server_host: String,
    server_fqdn: Option<String>,
    ports: Ports,
    directory: Option<Directory>,
}

impl Provisioner {
    /// Accounts of the mail server `config` names.
    pub fn new(config: &Config) -> Self {
        let layout = Layout::new(&config.mail_dir);
        Self {
            accounts: Accounts::new(layout.accounts_db()),
            layout,
            master_key: config.common.master_key.clone(),
            prefix: config.common.env_prefix.clone(),
            server_host: config.server_host.clone(),
            server_fqdn: config.server_fqdn.clone(),
            ports: config.ports,
            directory: config.directory.clone().map(Directory::new),
        }
    }

    /// The server's name in its certificate.
    fn fqdn(&self, domains: &Domains) -> String {
        self.server_fqdn
            .clone()
            .unwrap_or_else(|| format!("mail.{}", domains.primary()))
    }

    /// The address `mailbox` asks for, on one of `domains`.
    fn address(
        app: &AppId,
        addon: &str,
        mailbox: &Mailbox,
        domains: &Domains,
    ) -> Result<Address, AddonError> {
        let domain =
            domains
                .pick(&mailbox.domain)
                .map_err(|reason| AddonError::InvalidArgument {
                    field: format!("options.{addon}.mailbox_domain"),
                    reason,
                })?;
        let local = mailbox
            .name
            .clone()
            .unwrap_or_else(|| LocalPart::derived(app));
        Ok(Address::new(local, domain))
    }

    /// Gives the app its account for `addon` at `address`; moves a recvmail mailbox along
    /// when the address changed.
    async fn put(
        &self,
        app: &AppId,
        addon: &'static str,
        address: &Address,
        generation: u32,
    ) -> Result<String, AddonError> {
        if let Some(directory) = &self.directory
            && let Some(user) = directory.holder_of(address).await?
        {
            return Err(AddonError::FailedPrecondition(format!(
                "the address {address} is the directory user {user}'s; nothing was changed \
                 (name another mailbox)"
            )));
        }
        let password = self.master_key.derive_password(addon, app, generation);
        match self.accounts.put(app, addon, address, &password).await? {
            Put::Taken => Err(AddonError::FailedPrecondition(format!(
                "the address {address} belongs to another app or to the server's operator; \
                 nothing was changed (name another mailbox)"
            ))),
            Put::Written { moved_from } => {
                if addon == "recvmail"
                    && let Some(old) = moved_from.as_deref().and_then(Address::parse)
                {
                    self.move_mailbox(&old, address).await?;
                }
                Ok(password.expose().clone())
            }
        }
    }

    /// Keeps the mail of a renamed mailbox: `old`'s directory becomes `new`'s, unless `new`
    /// has mail already.
    async fn move_mailbox(&self, old: &Address, new: &Address) -> Result<(), AddonError> {
        let from = self.layout.mailbox_home(old);
        let to = self.layout.mailbox_home(new);
        if tokio::fs::try_exists(&to).await.unwrap_or(true) {
            return Ok(());
        }
        let (Some(from_domain), Some(to_domain)) = (from.parent(), to.parent()) else {
            return Ok(());
        };
        let Ok(owner) = tokio::fs::metadata(from_domain).await else {
            // No mail yet: nothing to move.
            return Ok(());
        };
        if !tokio::fs::try_exists(to_domain).await.unwrap_or(false) {
            // A domain directory Dovecot will also create mailboxes in: its owner and mode,
            // not the service's.
            tokio::fs::create_dir_all(to_domain)
                .await
                .map_err(|e| io_error("create", to_domain, e))?;
            std::os::unix::fs::chown(to_domain, Some(owner.uid()), Some(owner.gid()))
                .map_err(|e| io_error("give to the mail user", to_domain, e))?;
            tokio::fs::set_permissions(to_domain, owner.permissions())
                .await
                .map_err(|e| io_error("set the mode of", to_domain, e))?;
        }
        match tokio::fs::rename(&from, &to).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("move", &from, e)),
        }
    }

    /// Removes the mailbox of `address` and everything in it.
    async fn remove_mailbox(&self, address: &Address) -> Result<(), AddonError> {
        let home = self.layout.mailbox_home(address);
        match tokio::fs::remove_dir_all(&home).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &home, e)),
        }
    }

    fn sendmail_env(
        &self,
        address: &Address,
        password: String,
        display_name: Option<String>,
        fqdn_name: bool,
        domains: &Domains,
    ) -> EnvBundle {
        let var = |suffix: &str| self.prefix.var(suffix);
        let server = if fqdn_name {
            self.fqdn(domains)
        } else {
            self.server_host.clone()
        };
        let mut env = EnvBundle::new();
        env.insert(var("MAIL_SMTP_SERVER"), server);
        env.insert(var("MAIL_SMTP_PORT"), self.ports.smtp.to_string());
        env.insert(var("MAIL_SMTPS_PORT"), self.ports.smtps.to_string());
        env.insert(var("MAIL_SMTP_USERNAME"), address.to_string());
        env.insert(var("MAIL_SMTP_PASSWORD"), password);
        env.insert(var("MAIL_FROM"), address.to_string());
        env.insert(var("MAIL_DOMAIN"), address.domain().to_owned());
        if let Some(name) = display_name {
            env.insert(var("MAIL_FROM_DISPLAY_NAME"), name);
        }
        env
    }

    fn recvmail_env(&self, address: &Address, password: String) -> EnvBundle {
        let var = |suffix: &str| self.prefix.var(suffix);
        let mut env = EnvBundle::new();
        env.insert(var("MAIL_IMAP_SERVER"), self.server_host.clone());
        env.insert(var("MAIL_IMAP_PORT"), self.ports.imap.to_string());
        env.insert(var("MAIL_IMAPS_PORT"), self.ports.imaps.to_string());
        env.insert(var("MAIL_POP3_PORT"), self.ports.pop3.to_string());
        env.insert(var("MAIL_POP3S_PORT"), self.ports.pop3s.to_string());
        env.insert(var("MAIL_IMAP_USERNAME"), address.to_string());
        env.insert(var("MAIL_IMAP_PASSWORD"), password);
        env.insert(var("MAIL_TO"), address.to_string());
        env.insert(var("MAIL_TO_DOMAIN"), address.domain().to_owned());
        env
    }

    fn email_env(&self, domains: &Domains) -> EnvBundle {
        let var = |suffix: &str| self.prefix.var(suffix);
        let host = &self.server_host;
        let mut env = EnvBundle::new();
        env.insert(var("EMAIL_SMTP_SERVER"), host.clone());
        env.insert(var("EMAIL_SMTP_PORT"), self.ports.smtp.to_string());
        env.insert(var("EMAIL_IMAP_SERVER"), host.clone());
        env.insert(var("EMAIL_IMAP_PORT"), self.ports.imap.to_string());
        env.insert(var("EMAIL_IMAPS_PORT"), self.ports.imaps.to_string());
        env.insert(var("EMAIL_SIEVE_SERVER"), host.clone());
        env.insert(var("EMAIL_SIEVE_PORT"), self.ports.sieve.to_string());
        env.insert(var("EMAIL_DOMAIN"), domains.primary().to_owned());
        env.insert(var("EMAIL_DOMAINS"), domains.all().join(","));
        env.insert(var("EMAIL_SERVER_HOST"), self.fqdn(domains));
        env
    }
}

fn io_error(what: &str, path: &std::path::Path, error: std::io::Error) -> AddonError {
    AddonError::Internal(format!("cannot {what} {}: {error}", path.display()))
}

impl AddonBackend for Provisioner {
    const SERVICE: catalog::Service = catalog::MAIL;
    const BACKEND: Option<&'static str> = Some("The mail server's accounts store");
    type Spec = ProvisionSpec;

    async fn provision(&self, spec: ProvisionSpec) -> Result<EnvBundle, AddonError> {
        let domains = self.layout.domains().await?;
        let ProvisionSpec {
            app,
            generation,
            kind,
            ..
        } = spec;
        match kind {
            MailKind::Sendmail { optional: true, .. } => {
                // The app's users configure mail themselves: an account made before goes.
                self.accounts.remove(&app, "sendmail", &[]).await?;
                Ok(EnvBundle::new())
            }
            MailKind::Sendmail {
                display_name,
                requires_valid_certificate,
                mailbox,
                ..
            } => {
                let address = Self::address(&app, "sendmail", &mailbox, &domains)?;
                let password = self.put(&app, "sendmail", &address, generation).await?;
                Ok(self.sendmail_env(
                    &address,
                    password,
                    display_name,
                    requires_valid_certificate,
                    &domains,
                ))
            }
            MailKind::Recvmail { mailbox } => {
                let address = Self::address(&app, "recvmail", &mailbox, &domains)?;
                let password = self.put(&app, "recvmail", &address, generation).await?;
                Ok(self.recvmail_env(&address, password))
            }
            MailKind::Email => Ok(self.email_env(&domains)),
        }
    }

    async fn deprovision(&self, app: AppId, addon: &'static str) -> Result<(), AddonError> {
        if addon == "email" {
            // The email addon holds nothing of the app's.
            return Ok(());
        }
        let domains = self.layout.domains().await?;
        let derived: Vec<Address> = domains
            .all()
            .iter()
            .map(|domain| Address::new(LocalPart::derived(&app), domain))
            .collect();
        // The logins go first (refused from this commit on), then the mail.
        match self.accounts.remove(&app, addon, &derived).await? {
            Removal::Taken => Err(AddonError::FailedPrecondition(format!(
                "the app has no {addon} account and its address is held by another app or the \
                 server's operator; nothing was removed"
            ))),
            Removal::Removed { .. } if addon == "sendmail" => Ok(()),
            Removal::Removed {
                addresses,
                free_derived,
            } => {
                // The default mailboxes nobody else holds go too: a Deprovision interrupted
                // after the rows went is finished by the next one.
                let addresses = addresses.iter().filter_map(|a| Address::parse(a));
                for address in addresses.chain(free_derived) {
                    self.remove_mailbox(&address).await?;
                }
                Ok(())
            }
        }
    }

    async fn list(&self) -> Result<Vec<String>, AddonError> {
        self.accounts.app_ids().await
    }

    async fn ping(&self) -> bool {
        self.accounts.ping().await && self.layout.domains().await.is_ok()
    }
}
