//! The manifest's `addons` object, validated whole: every unknown addon, unknown option and
//! wrongly typed value is reported at once, with its path (`addons.mysql.multipleDatabases`),
//! before anything is touched.

pub mod cron;
pub mod json;

use std::collections::BTreeMap;

use fleet_shared::{
    catalog::ADDONS,
    proto::addon::{
        DockerOptions, EmailOptions, LdapOptions, MongodbOptions, MysqlOptions, OidcOptions,
        PostgresqlOptions, ProxyAuthOptions, RecvmailOptions, RedisOptions, SendmailOptions,
        TokenSignatureAlgorithm, TurnOptions, provision_request::Options,
    },
};
use prost_types::{Struct, Value, value::Kind};

use crate::limits::{
    MAX_MANIFEST_BYTES, MAX_MANIFEST_VALUES, MAX_OPTION_BYTES, MAX_SCHEDULER_TASKS,
    MAX_TASK_NAME_BYTES, quote, segment,
};

/// Most problems kept in memory for one manifest; the rest are only counted.
const MAX_KEPT_PROBLEMS: usize = 100;

/// Where the tls addon's files appear in the app's container.
pub const TLS_CERT_PATH: &str = "/etc/certs/tls_cert.pem";
/// See [`TLS_CERT_PATH`].
pub const TLS_KEY_PATH: &str = "/etc/certs/tls_key.pem";

/// A validated `addons` object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// Addons provisioned by an addon service, by manifest name, with their typed options.
    pub provisioned: BTreeMap<&'static str, Options>,
    /// `localstorage`, if present.
    pub local_storage: Option<LocalStorage>,
    /// `scheduler` tasks, by name.
    pub scheduled_tasks: BTreeMap<String, ScheduledTask>,
    /// Whether `tls` is present.
    pub tls: bool,
    /// `proxyAuth`, if present: provisioned (it is in `provisioned` too), and recorded here for
    /// the orchestrator's proxy.
    pub proxy_auth: Option<ProxyAuth>,
}

/// `localstorage` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalStorage {
    /// FTP access: (uid, uname).
    pub ftp: Option<(u32, String)>,
}

/// One `scheduler` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledTask {
    pub schedule: String,
    pub command: String,
}

/// `proxyAuth` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyAuth {
    pub path: String,
    pub basic_auth: bool,
    pub supports_bearer_auth: bool,
}

impl From<&ProxyAuth> for ProxyAuthOptions {
    fn from(proxy_auth: &ProxyAuth) -> Self {
        let ProxyAuth {
            path,
            basic_auth,
            supports_bearer_auth,
        } = proxy_auth;
        Self {
            path: path.clone(),
            basic_auth: *basic_auth,
            supports_bearer_auth: *supports_bearer_auth,
        }
    }
}

/// One problem in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// e.g. `addons.oidc.tokenSignatureAlgorithm`.
    pub path: String,
    pub reason: String,
}

/// Why a manifest is invalid: its first problems, and how many more were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    /// The first problems, in the order found.
    pub listed: Vec<Problem>,
    /// Problems found beyond `listed`.
    pub unlisted: usize,
}

impl Problems {
    /// Every problem found.
    pub fn total(&self) -> usize {
        self.listed.len() + self.unlisted
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl Manifest {
    /// Validates `addons`, collecting every problem (keeping the first ones).
    pub fn parse(addons: &Struct) -> Result<Self, Problems> {
        let mut parser = Parser::default();
        let mut manifest = Self::default();
        let (values, bytes) = measure(addons);
        if values > MAX_MANIFEST_VALUES {
            parser.problem(
                "addons",
                format!(
                    "has {values} keys and list items; at most {MAX_MANIFEST_VALUES} are accepted"
                ),
            );
        }
        if bytes > MAX_MANIFEST_BYTES {
            parser.problem(
                "addons",
                format!("is {bytes} bytes; at most {MAX_MANIFEST_BYTES} are accepted"),
            );
        }
        for (name, value) in &addons.fields {
            let path = format!("addons.{}", segment(name));
            let Some(options) = parser.object(&path, value) else {
                continue;
            };
            let mut o = OptionReader::new(&mut parser, &path, options);
            match name.as_str() {
                "mysql" => {
                    let multiple_databases = o.boolean("multipleDatabases");
                    manifest
                        .provision("mysql", Options::Mysql(MysqlOptions { multiple_databases }));
                }
                "postgresql" => {
                    let locale = o.string("locale").unwrap_or_default();
                    let extensions = o.strings("extensions");
                    manifest.provision(
                        "postgresql",
                        Options::Postgresql(PostgresqlOptions { locale, extensions }),
                    );
                }
                "mongodb" => {
                    let oplog = o.boolean("oplog");
                    manifest.provision("mongodb", Options::Mongodb(MongodbOptions { oplog }));
                }
                "redis" => {
                    let no_password = o.boolean("noPassword");
                    manifest.provision("redis", Options::Redis(RedisOptions { no_password }));
                }
                "ldap" => manifest.provision("ldap", Options::Ldap(LdapOptions {})),
                "oidc" => {
                    let oidc = o.oidc();
                    manifest.provision("oidc", Options::Oidc(oidc));
                }
                "sendmail" => {
                    let optional = o.boolean("optional");
                    let supports_display_name = o.boolean("supportsDisplayName");
                    let requires_valid_certificate = o.boolean("requiresValidCertificate");
                    manifest.provision(
                        "sendmail",
                        Options::Sendmail(SendmailOptions {
                            optional,
                            supports_display_name,
                            requires_valid_certificate,
                            ..SendmailOptions::default()
                        }),
                    );
                }
                "recvmail" => {
                    manifest.provision("recvmail", Options::Recvmail(RecvmailOptions::default()));
                }
                "email" => manifest.provision("email", Options::Email(EmailOptions {})),
                "turn" => manifest.provision("turn", Options::Turn(TurnOptions {})),
                "docker" => manifest.provision("docker", Options::Docker(DockerOptions {})),
                "localstorage" => {
                    let ftp = o.ftp();
                    manifest.local_storage = Some(LocalStorage { ftp });
                }
                "scheduler" => {
                    manifest.scheduled_tasks = o.tasks();
                }
                "tls" => manifest.tls = true,
                "proxyAuth" => {
                    let path = o.string("path").unwrap_or_default();
                    if !(path.is_empty() || path.starts_with('/') || path.starts_with("!/")) {
                        o.problem(
                            "path",
                            "must start with \"/\" (or \"!/\" to exclude a path)",
                        );
                    }
                    let basic_auth = o.boolean("basicAuth");
                    let supports_bearer_auth = o.boolean("supportsBearerAuth");
                    let proxy_auth = ProxyAuth {
                        path,
                        basic_auth,
                        supports_bearer_auth,
                    };
                    manifest.provision(
                        "proxyAuth",
                        Options::ProxyAuth(ProxyAuthOptions::from(&proxy_auth)),
                    );
                    manifest.proxy_auth = Some(proxy_auth);
                }
                unknown => {
                    parser.problem(
                        &path,
                        format!(
                            "unknown addon {}; known: {}",
                            quote(unknown),
                            ADDONS.join(", ")
                        ),
                    );
                    continue;
                }
            }
            o.reject_unread();
        }
        if parser.problems.total() == 0 {
            Ok(manifest)
        } else {
            Err(parser.problems)
        }
    }

    fn provision(&mut self, addon: &'static str, options: Options) {
        self.provisioned.insert(addon, options);
    }

    /// Every addon present, by manifest name.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.provisioned.keys().copied().collect();
        if self.local_storage.is_some() {
            names.push("localstorage");
        }
        if !self.scheduled_tasks.is_empty() {
            names.push("scheduler");
        }
        if self.tls {
            names.push("tls");
        }
        // proxyAuth is among the provisioned addons.
        names.sort_unstable();
        names
    }
}

/// How many values (object keys and list items, at any depth) `object` holds, and roughly
/// how many bytes (keys and strings, 8 per number or boolean).
fn measure(object: &Struct) -> (usize, usize) {
    fn measure_value(value: &Value) -> (usize, usize) {
        match &value.kind {
            None | Some(Kind::NullValue(_)) => (0, 4),
            Some(Kind::NumberValue(_) | Kind::BoolValue(_)) => (0, 8),
            Some(Kind::StringValue(text)) => (0, text.len()),
            Some(Kind::ListValue(list)) => list.values.iter().fold((0, 0), |(n, b), item| {
                let (items, bytes) = measure_value(item);
                (n + 1 + items, b + bytes)
            }),
            Some(Kind::StructValue(object)) => measure(object),
        }
    }
    object.fields.iter().fold((0, 0), |(n, b), (key, item)| {
        let (items, bytes) = measure_value(item);
        (n + 1 + items, b + key.len() + bytes)
    })
}

#[derive(Default)]
struct Parser {
    problems: Problems,
}

impl Parser {
    fn problem(&mut self, path: &str, reason: impl Into<String>) {
        if self.problems.listed.len() < MAX_KEPT_PROBLEMS {
            self.problems.listed.push(Problem {
                path: path.to_owned(),
                reason: reason.into(),
            });
        } else {
            self.problems.unlisted += 1;
        }
    }

    fn object<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v Struct> {
        match &value.kind {
            Some(Kind::StructValue(object)) => Some(object),
            other => {
                self.problem(path, format!("must be an object, got {}", kind_name(other)));
                None
            }
        }
    }
}

/// The options object of one addon: typed getters that record problems, and a check that no
/// option was left unread (unknown).
struct OptionReader<'p, 'v> {
    parser: &'p mut Parser,
    path: &'p str,
    fields: &'v BTreeMap<String, Value>,
    read: Vec<&'static str>,
    /// Every key is meaningful (the scheduler's keys are task names).
    keys_are_data: bool,
}

impl<'p, 'v> OptionReader<'p, 'v> {
    fn new(parser: &'p mut Parser, path: &'p str, object: &'v Struct) -> Self {
        Self {
            parser,
            path,
            fields: &object.fields,
            read: Vec::new(),
            keys_are_data: false,
        }
    }

    fn problem(&mut self, option: &str, reason: impl Into<String>) {
        let path = format!("{}.{}", self.path, segment(option));
        self.parser.problem(&path, reason);
    }

    fn get(&mut self, option: &'static str) -> Option<&'v Kind> {
        self.read.push(option);
        self.fields.get(option).and_then(|v| v.kind.as_ref())
    }

    fn boolean(&mut self, option: &'static str) -> bool {
        match self.get(option) {
            None | Some(Kind::NullValue(_)) => false,
            Some(Kind::BoolValue(value)) => *value,
            Some(other) => {
                let got = kind_name(&Some(other.clone()));
                self.problem(option, format!("must be a boolean, got {got}"));
                false
            }
        }
    }

    fn string(&mut self, option: &'static str) -> Option<String> {
        match self.get(option) {
            None | Some(Kind::NullValue(_)) => None,
            Some(Kind::StringValue(value)) if value.len() > MAX_OPTION_BYTES => {
                self.problem(option, too_long(value));
                None
            }
            Some(Kind::StringValue(value)) => Some(value.clone()),
            Some(other) => {
                let got = kind_name(&Some(other.clone()));
                self.problem(option, format!("must be a string, got {got}"));
                None
            }
        }
    }

    fn strings(&mut self, option: &'static str) -> Vec<String> {
        match self.get(option) {
            None | Some(Kind::NullValue(_)) => Vec::new(),
            Some(Kind::ListValue(list)) => {
                let mut strings = Vec::new();
                for (index, item) in list.values.iter().enumerate() {
                    match &item.kind {
                        Some(Kind::StringValue(value)) if value.len() > MAX_OPTION_BYTES => {
                            self.problem(&format!("{option}[{index}]"), too_long(value));
                        }
                        Some(Kind::StringValue(value)) => strings.push(value.clone()),
                        other => {
                            let reason = format!("must be a string, got {}", kind_name(other));
                            self.problem(&format!("{option}[{index}]"), reason);
                        }
                    }
                }
                strings
            }
            Some(other) => {
                let got = kind_name(&Some(other.clone()));
                self.problem(option, format!("must be a list of strings, got {got}"));
                Vec::new()
            }
        }
    }

    fn oidc(&mut self) -> OidcOptions {
        let login = self.string("loginRedirectUri").unwrap_or_default();
        let login_redirect_uris: Vec<String> = login
            .split(',')
            .map(str::trim)
            .filter(|uri| !uri.is_empty())
            .map(str::to_owned)
            .collect();
        for uri in &login_redirect_uris {
            if !(uri.starts_with('/') || uri.contains(":/")) {
                let reason = format!(
                    "{} must be a path (\"/callback\") or a URI with a scheme",
                    quote(uri)
                );
                self.problem("loginRedirectUri", reason);
            }
        }
        let logout_redirect_uri = self.string("logoutRedirectUri").unwrap_or_default();
        if !logout_redirect_uri.is_empty() && !logout_redirect_uri.starts_with('/') {
            self.problem(
                "logoutRedirectUri",
                "must be a URL path, starting with \"/\"",
            );
        }
        let algorithm = match self.string("tokenSignatureAlgorithm").as_deref() {
            None => TokenSignatureAlgorithm::Unspecified,
            Some("RS256") => TokenSignatureAlgorithm::Rs256,
            Some("EdDSA") => TokenSignatureAlgorithm::Eddsa,
            Some(other) => {
                let reason = format!("must be \"RS256\" or \"EdDSA\", got {}", quote(other));
                self.problem("tokenSignatureAlgorithm", reason);
                TokenSignatureAlgorithm::Unspecified
            }
        };
        OidcOptions {
            login_redirect_uris,
            logout_redirect_uri,
            token_signature_algorithm: algorithm.into(),
        }
    }

    fn ftp(&mut self) -> Option<(u32, String)> {
        let ftp = match self.get("ftp") {
            None | Some(Kind::NullValue(_)) => return None,
            Some(Kind::StructValue(ftp)) => ftp,
            Some(other) => {
                let got = kind_name(&Some(other.clone()));
                self.problem(
                    "ftp",
                    format!("must be an object {{uid, uname}}, got {got}"),
                );
                return None;
            }
        };
        let path = format!("{}.ftp", self.path);
        let mut nested = OptionReader::new(&mut *self.parser, &path, ftp);
        let uid = match nested.get("uid") {
            Some(Kind::NumberValue(n))
                if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n) =>
            {
                Some(*n as u32)
            }
            Some(other) => {
                let got = kind_name(&Some(other.clone()));
                nested.problem("uid", format!("must be a non-negative integer, got {got}"));
                None
            }
            None => {
                nested.problem("uid", "is required");
                None
            }
        };
        let uname = nested.string("uname");
        if uname.as_deref().is_none_or(str::is_empty) {
            nested.problem("uname", "is required: the user name owning the files");
        }
        nested.reject_unread();
        Some((uid?, uname?))
    }

    fn tasks(&mut self) -> BTreeMap<String, ScheduledTask> {
        let mut tasks = BTreeMap::new();
        let all: Vec<(&'v String, &'v Value)> = self.fields.iter().collect();
        if all.len() > MAX_SCHEDULER_TASKS {
            let path = self.path.to_owned();
            self.parser.problem(
                &path,
                format!(
                    "has {} tasks; at most {MAX_SCHEDULER_TASKS} are accepted",
                    all.len()
                ),
            );
        }
        for (name, value) in all {
            // Task names are the scheduler object's keys: all of them are read.
            let path = format!("{}.{}", self.path, segment(name));
            if name.len() > MAX_TASK_NAME_BYTES {
                self.parser.problem(
                    &path,
                    format!(
                        "the task name is {} bytes; at most {MAX_TASK_NAME_BYTES} are accepted",
                        name.len()
                    ),
                );
            }
            let Some(task) = self.parser.object(&path, value) else {
                continue;
            };
            let mut o = OptionReader::new(&mut *self.parser, &path, task);
            let schedule = o.string("schedule");
            let command = o.string("command");
            match &schedule {
                None => o.problem("schedule", "is required"),
                Some(schedule) => {
                    if let Err(reason) = cron::validate(schedule) {
                        o.problem("schedule", reason);
                    }
                }
            }
            if command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                o.problem("command", "is required: the shell command to run");
            }
            o.reject_unread();
            if let (Some(schedule), Some(command)) = (schedule, command) {
                tasks.insert(name.clone(), ScheduledTask { schedule, command });
            }
        }
        self.keys_are_data = true;
        tasks
    }

    fn reject_unread(&mut self) {
        if self.keys_are_data {
            return;
        }
        let unknown: Vec<String> = self
            .fields
            .keys()
            .filter(|key| !self.read.contains(&key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            let known = if self.read.is_empty() {
                "this addon takes no options".to_owned()
            } else {
                format!("known: {}", self.read.join(", "))
            };
            self.problem(&key, format!("unknown option; {known}"));
        }
    }
}

fn too_long(value: &str) -> String {
    format!(
        "is {} bytes; at most {MAX_OPTION_BYTES} are accepted",
        value.len()
    )
}

fn kind_name(kind: &Option<Kind>) -> &'static str {
    match kind {
        None | Some(Kind::NullValue(_)) => "null",
        Some(Kind::NumberValue(_)) => "a number",
        Some(Kind::StringValue(_)) => "a string",
        Some(Kind::BoolValue(_)) => "a boolean",
        Some(Kind::StructValue(_)) => "an object",
        Some(Kind::ListValue(_)) => "a list",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> Result<Manifest, Vec<String>> {
        let addons = json::to_struct(&value).unwrap_or_default();
        Manifest::parse(&addons).map_err(|p| p.listed.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_full_manifest_parses_into_typed_options() {
        let manifest = parse(json!({
            "mysql": {"multipleDatabases": true},
            "postgresql": {"locale": "de_DE.UTF-8", "extensions": ["hstore"]},
            "redis": {"noPassword": true},
            "ldap": {},
            "oidc": {"loginRedirectUri": "/auth/callback, app.immich:/", "logoutRedirectUri": "/home", "tokenSignatureAlgorithm": "EdDSA"},
            "sendmail": {"optional": false, "supportsDisplayName": true},
            "localstorage": {"ftp": {"uid": 33, "uname": "www-data"}},
            "scheduler": {"update_feeds": {"schedule": "*/5 * * * *", "command": "/app/code/update.sh"}},
            "tls": {},
            "proxyAuth": {"path": "!/webhooks", "basicAuth": true, "supportsBearerAuth": true},
            "turn": {}, "docker": {}, "email": {}, "recvmail": {}, "mongodb": {"oplog": true}
        }))
        .unwrap_or_default();
        assert_eq!(manifest.names(), ADDONS.to_vec());
        assert_eq!(
            manifest.provisioned.get("mysql"),
            Some(&Options::Mysql(MysqlOptions {
                multiple_databases: true
            }))
        );
        let Some(Options::Oidc(oidc)) = manifest.provisioned.get("oidc") else {
            unreachable!("oidc is parsed")
        };
        assert_eq!(oidc.login_redirect_uris, ["/auth/callback", "app.immich:/"]);
        assert_eq!(
            oidc.token_signature_algorithm,
            TokenSignatureAlgorithm::Eddsa as i32
        );
        assert_eq!(
            manifest.local_storage,
            Some(LocalStorage {
                ftp: Some((33, "www-data".to_owned()))
            })
        );
        assert_eq!(
            manifest.scheduled_tasks["update_feeds"].schedule,
            "*/5 * * * *"
        );
        assert_eq!(
            manifest.proxy_auth.as_ref().map(|p| p.path.as_str()),
            Some("!/webhooks")
        );
        assert_eq!(
            manifest.provisioned.get("proxyAuth"),
            Some(&Options::ProxyAuth(ProxyAuthOptions {
                path: "!/webhooks".to_owned(),
                basic_auth: true,
                supports_bearer_auth: true,
            }))
        );
        assert!(manifest.tls);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let problems = parse(json!({
            "mysql": {"multipleDatabases": "yes", "typo": 1},
            "postgres": {},
            "redis": [],
            "ldap": {"anything": true},
            "oidc": {"tokenSignatureAlgorithm": "HS256", "logoutRedirectUri": "home"},
            "localstorage": {"ftp": {"uid": -1}},
            "scheduler": {"a": {"schedule": "* * * * * *", "command": "x"}, "b": {"command": ""}},
            "proxyAuth": {"path": "admin", "basicAuth": 1},
            "sendmail": {"optional": null, "supportsDisplayName": "true"}
        }))
        .err()
        .unwrap_or_default();
        let expected = [
            "addons.mysql.multipleDatabases: must be a boolean, got a string",
            "addons.mysql.typo: unknown option; known: multipleDatabases",
            "addons.postgres: unknown addon",
            "addons.redis: must be an object, got a list",
            "addons.ldap.anything: unknown option; this addon takes no options",
            "addons.oidc.tokenSignatureAlgorithm: must be \"RS256\" or \"EdDSA\"",
            "addons.oidc.logoutRedirectUri: must be a URL path",
            "addons.localstorage.ftp.uid: must be a non-negative integer",
            "addons.localstorage.ftp.uname: is required",
            "addons.scheduler.a.schedule: needs 5 fields",
            "addons.scheduler.b.schedule: is required",
            "addons.scheduler.b.command: is required",
            "addons.proxyAuth.path: must start with \"/\"",
            "addons.proxyAuth.basicAuth: must be a boolean, got a number",
            "addons.sendmail.supportsDisplayName: must be a boolean, got a string",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{want:?} not in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn proxy_auth_goes_to_the_oidc_service_with_its_options() {
        let manifest = parse(json!({
            "proxyAuth": {"path": "/admin", "basicAuth": true, "supportsBearerAuth": false}
        }))
        .unwrap_or_default();
        let expected = ProxyAuthOptions {
            path: "/admin".to_owned(),
            basic_auth: true,
            supports_bearer_auth: false,
        };
        let options = manifest.provisioned.get("proxyAuth");
        assert_eq!(options, Some(&Options::ProxyAuth(expected)));
        assert_eq!(options.map(Options::addon_name), Some("proxyAuth"));
        assert_eq!(
            fleet_shared::catalog::service_of("proxyAuth"),
            Some(&fleet_shared::catalog::OIDC)
        );
        // Still recorded for GetApp, and named once.
        assert_eq!(
            manifest.proxy_auth,
            Some(ProxyAuth {
                path: "/admin".to_owned(),
                basic_auth: true,
                supports_bearer_auth: false,
            })
        );
        assert_eq!(manifest.names(), ["proxyAuth"]);

        let everything = parse(json!({"proxyAuth": {}, "oidc": {}})).unwrap_or_default();
        assert_eq!(
            everything.provisioned.get("proxyAuth"),
            Some(&Options::ProxyAuth(ProxyAuthOptions::default())),
            "no path: everything is protected"
        );
        assert_eq!(everything.names(), ["oidc", "proxyAuth"]);
    }

    #[test]
    fn an_empty_manifest_is_valid() {
        assert_eq!(parse(json!({})).map(|m| m.names()), Ok(Vec::new()));
    }
}
