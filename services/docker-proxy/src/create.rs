//! What an app may ask of a new container or exec instance: every field of the create bodies
//! is known here and checked, fail closed (an unknown field is refused, not passed on), and the
//! proxy's own fields are forced: the network, the labels naming the app, and bind sources
//! mapped from `/app/data` to the app's data directory on the host.

use std::{
    collections::BTreeMap,
    path::{Component, Path, PathBuf},
};

use serde_json::{Map, Value, json};

use crate::routes::Refused;

/// The label naming the app a container belongs to.
pub const APP_LABEL: &str = "fleet.docker.app";
/// The label proving the proxy made the container (see [`crate::engine::Engine::seal`]).
pub const SEAL_LABEL: &str = "fleet.docker.seal";
/// Label keys apps may not set: the proxy's own.
const RESERVED_LABEL_PREFIX: &str = "fleet.";
/// Where an app's data directory is inside its own container, and so in its bind sources.
pub const APP_DATA: &str = "/app/data";

/// An app's data directory (its `/app/data`), as this service and as the engine see it.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// Where this service finds it, to resolve symlinks.
    pub local: PathBuf,
    /// Where the engine finds the same directory.
    pub host: PathBuf,
}

/// What the proxy knows of the app whose call it checks.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The app's id, the value of [`APP_LABEL`].
    pub app: String,
    /// The value of [`SEAL_LABEL`] for this app.
    pub seal: String,
    /// The network its containers go on.
    pub network: String,
    /// Its data directory, if the operator configured data directories.
    pub data: Option<DataDir>,
    /// Whether it may publish ports on the engine's host.
    pub allow_published_ports: bool,
}

fn refuse(message: impl Into<String>) -> Refused {
    Refused(message.into())
}

/// Whether a JSON value is the zero value a client sends for a field it leaves unset.
fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn object<'a>(value: &'a mut Value, what: &str) -> Result<&'a mut Map<String, Value>, Refused> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(refuse(format!("{what} must be a JSON object"))),
    }
}

/// An object, or `None` for null (the client left it unset); anything else is refused.
fn optional_object<'a>(
    value: &'a Value,
    what: &str,
) -> Result<Option<&'a Map<String, Value>>, Refused> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        _ => Err(refuse(format!("{what} must be an object"))),
    }
}

fn string_or_empty<'a>(value: &'a Value, what: &str) -> Result<&'a str, Refused> {
    match value {
        Value::Null => Ok(""),
        Value::String(s) => Ok(s),
        _ => Err(refuse(format!("{what} must be a string"))),
    }
}

/// The fields of a container's configuration (top level of the create body) an app may set
/// freely; `Labels`, `HostConfig` and `NetworkingConfig` are checked below, anything else is
/// refused.
const FREE_CONFIG_FIELDS: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "StopSignal",
    "StopTimeout",
    "Shell",
];

/// Host settings that only limit the container, or change nothing outside it.
const FREE_HOST_FIELDS: &[&str] = &[
    "CpuShares",
    "Memory",
    "BlkioWeight",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "NanoCpus",
    "Init",
    "PidsLimit",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "KernelMemory",
    "KernelMemoryTCP",
    "ContainerIDFile",
    "RestartPolicy",
    "AutoRemove",
    "ConsoleSize",
    "CapDrop",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "ReadonlyRootfs",
    "ShmSize",
    "Tmpfs",
];

/// Host settings an app may not use at all, with the reason the refusal gives.
const FORBIDDEN_HOST_FIELDS: &[(&str, &str)] = &[
    ("Privileged", "privileged containers own the host"),
    ("CapAdd", "added capabilities reach beyond the container"),
    ("Devices", "host devices are not given to apps"),
    (
        "DeviceRequests",
        "host devices (GPUs) are not given to apps",
    ),
    ("DeviceCgroupRules", "device cgroup rules open host devices"),
    ("BlkioWeightDevice", "rules on host devices are not allowed"),
    (
        "BlkioDeviceReadBps",
        "rules on host devices are not allowed",
    ),
    (
        "BlkioDeviceWriteBps",
        "rules on host devices are not allowed",
    ),
    (
        "BlkioDeviceReadIOps",
        "rules on host devices are not allowed",
    ),
    (
        "BlkioDeviceWriteIOps",
        "rules on host devices are not allowed",
    ),
    ("CpuRealtimePeriod", "real-time scheduling starves the host"),
    (
        "CpuRealtimeRuntime",
        "real-time scheduling starves the host",
    ),
    (
        "OomKillDisable",
        "the host's OOM killer must be able to stop it",
    ),
    ("CgroupParent", "the cgroup parent is the engine's"),
    ("Cgroup", "another container's cgroup is not the app's"),
    ("VolumeDriver", "volume drivers are not allowed"),
    ("VolumesFrom", "other containers' volumes are not the app's"),
    ("Links", "links reach other containers by name"),
    ("Sysctls", "kernel settings are the engine's"),
    ("Runtime", "the runtime is the engine's"),
    ("StorageOpt", "storage options are the engine's"),
    ("Ulimits", "resource limits are the engine's"),
    ("Annotations", "runtime annotations are the engine's"),
];

/// Checks and rewrites the body of `POST /containers/create` for `scope`'s app; the result is
/// the body to send to the engine.
pub fn container_create(body: &[u8], scope: &Scope) -> Result<Vec<u8>, Refused> {
    let mut config: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(format!("the container's configuration is not JSON: {e}")))?;
    let top = object(&mut config, "the container's configuration")?;
    let mut host_config = top.remove("HostConfig").unwrap_or(Value::Null);
    let networking = top.remove("NetworkingConfig").unwrap_or(Value::Null);
    let labels = top.remove("Labels").unwrap_or(Value::Null);
    if let Some(field) = top
        .keys()
        .find(|k| !FREE_CONFIG_FIELDS.contains(&k.as_str()))
    {
        return Err(refuse(format!(
            "the container field {field:?} is not known to the fleet's Docker proxy, so it is \
             refused"
        )));
    }

    let mut labels = app_labels(labels)?;
    labels.insert(APP_LABEL.to_owned(), Value::String(scope.app.clone()));
    labels.insert(SEAL_LABEL.to_owned(), Value::String(scope.seal.clone()));
    top.insert(
        "Labels".to_owned(),
        Value::Object(labels.into_iter().collect()),
    );

    if host_config.is_null() {
        host_config = Value::Object(Map::new());
    }
    let host = object(&mut host_config, "HostConfig")?;
    let network_mode = check_host_config(host, scope)?;
    check_networking(&networking, &scope.network)?;
    let network_mode = network_mode.unwrap_or_else(|| scope.network.clone());
    let networking = if network_mode == "none" {
        json!({ "EndpointsConfig": {} })
    } else {
        json!({ "EndpointsConfig": { network_mode.clone(): {} } })
    };
    host.insert("NetworkMode".to_owned(), Value::String(network_mode));
    top.insert("HostConfig".to_owned(), host_config);
    top.insert("NetworkingConfig".to_owned(), networking);
    serde_json::to_vec(&config).map_err(|e| refuse(format!("cannot encode the body: {e}")))
}

/// The app's own labels, none of them the proxy's.
fn app_labels(labels: Value) -> Result<BTreeMap<String, Value>, Refused> {
    let labels = match labels {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(map) => map,
        _ => return Err(refuse("Labels must be an object of strings")),
    };
    labels
        .into_iter()
        .map(|(key, value)| {
            if key.starts_with(RESERVED_LABEL_PREFIX) {
                return Err(refuse(format!(
                    "label {key:?}: labels starting with {RESERVED_LABEL_PREFIX:?} are set by \
                     the fleet's Docker proxy"
                )));
            }
            if !value.is_string() {
                return Err(refuse(format!("label {key:?} must be a string")));
            }
            Ok((key, value))
        })
        .collect()
}

/// Checks every host setting, rewrites binds and mounts; returns the network mode the app
/// asked for when it is one it may have (`none`), `None` for the default.
fn check_host_config(
    host: &mut Map<String, Value>,
    scope: &Scope,
) -> Result<Option<String>, Refused> {
    let mut network_mode = None;
    for (field, value) in host.iter_mut() {
        let field = field.as_str();
        if FREE_HOST_FIELDS.contains(&field) {
            continue;
        }
        if let Some((_, why)) = FORBIDDEN_HOST_FIELDS.iter().find(|(f, _)| *f == field) {
            if is_unset(value) {
                continue;
            }
            return Err(refuse(format!("{field} is not allowed: {why}")));
        }
        match field {
            "NetworkMode" => {
                let mode = string_or_empty(value, "NetworkMode")?;
                match mode {
                    "" | "default" => {}
                    "none" => network_mode = Some("none".to_owned()),
                    m if m == scope.network => {}
                    m => {
                        return Err(refuse(format!(
                            "network mode {m:?} is not allowed: an app's containers are on the \
                             {:?} network (or none)",
                            scope.network
                        )));
                    }
                }
            }
            "PidMode" | "UTSMode" | "UsernsMode" => {
                if !is_unset(value) {
                    return Err(refuse(format!(
                        "{field} is not allowed: the container keeps namespaces of its own"
                    )));
                }
            }
            "IpcMode" => match string_or_empty(value, field)? {
                "" | "private" | "none" | "shareable" => {}
                m => {
                    return Err(refuse(format!(
                        "IpcMode {m:?} is not allowed: the container keeps namespaces of its own"
                    )));
                }
            },
            "CgroupnsMode" => match string_or_empty(value, field)? {
                "" | "private" => {}
                m => {
                    return Err(refuse(format!(
                        "CgroupnsMode {m:?} is not allowed: the container keeps namespaces of \
                         its own"
                    )));
                }
            },
            "Isolation" => match string_or_empty(value, field)? {
                "" | "default" => {}
                m => return Err(refuse(format!("Isolation {m:?} is not allowed"))),
            },
            "SecurityOpt" => check_security_options(value)?,
            // An empty list is not "unset" here: it unmasks /proc and /sys paths.
            "MaskedPaths" | "ReadonlyPaths" => {
                if !value.is_null() {
                    return Err(refuse(format!(
                        "{field} is not allowed: the kernel paths the engine protects stay so"
                    )));
                }
            }
            "OomScoreAdj" => {
                if value.as_i64().is_some_and(|v| v < 0) {
                    return Err(refuse(
                        "a negative OomScoreAdj is not allowed: it shields the container from \
                         the OOM killer at the host's expense",
                    ));
                }
            }
            "LogConfig" => check_log_config(value)?,
            "PortBindings" | "PublishAllPorts" => {
                if !is_unset(value) && !scope.allow_published_ports {
                    return Err(refuse(format!(
                        "{field}: publishing ports on the engine's host is not allowed by this \
                         fleet's operator"
                    )));
                }
            }
            "Binds" => rewrite_binds(value, scope)?,
            "Mounts" => rewrite_mounts(value, scope)?,
            other => {
                return Err(refuse(format!(
                    "the host setting {other:?} is not known to the fleet's Docker proxy, so \
                     it is refused"
                )));
            }
        }
    }
    Ok(network_mode)
}

/// Only `no-new-privileges` may be asked for; anything else weakens the confinement.
fn check_security_options(value: &Value) -> Result<(), Refused> {
    let options = match value {
        Value::Null => return Ok(()),
        Value::Array(options) => options,
        _ => return Err(refuse("SecurityOpt must be a list")),
    };
    for option in options {
        match option.as_str() {
            Some("no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true") => {}
            _ => {
                return Err(refuse(format!(
                    "security option {option} is not allowed; only no-new-privileges is"
                )));
            }
        }
    }
    Ok(())
}

/// The engine's own log drivers, with size limits only: other drivers ship logs elsewhere.
fn check_log_config(value: &Value) -> Result<(), Refused> {
    let Some(log) = optional_object(value, "LogConfig")? else {
        return Ok(());
    };
    for (key, value) in log {
        match key.as_str() {
            "Type" => match string_or_empty(value, "LogConfig.Type")? {
                "" | "json-file" | "local" | "none" => {}
                other => return Err(refuse(format!("log driver {other:?} is not allowed"))),
            },
            "Config" => {
                let mut options = optional_object(value, "LogConfig.Config")?
                    .into_iter()
                    .flat_map(|config| config.keys());
                if let Some(option) =
                    options.find(|k| !matches!(k.as_str(), "max-size" | "max-file" | "compress"))
                {
                    return Err(refuse(format!("log option {option:?} is not allowed")));
                }
            }
            other => return Err(refuse(format!("LogConfig.{other} is not known"))),
        }
    }
    Ok(())
}

/// `NetworkingConfig` may only name the apps' network (or `default`), with nothing set.
fn check_networking(networking: &Value, network: &str) -> Result<(), Refused> {
    let endpoints = match networking {
        Value::Null => return Ok(()),
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| *k != "EndpointsConfig") {
                return Err(refuse(format!("NetworkingConfig.{key} is not known")));
            }
            match map.get("EndpointsConfig") {
                None | Some(Value::Null) => return Ok(()),
                Some(Value::Object(endpoints)) => endpoints,
                Some(_) => return Err(refuse("EndpointsConfig must be an object")),
            }
        }
        _ => return Err(refuse("NetworkingConfig must be an object")),
    };
    for (name, settings) in endpoints {
        if name != network && name != "default" {
            return Err(refuse(format!(
                "network {name:?} is not allowed: an app's containers are on the {network:?} \
                 network"
            )));
        }
        let Value::Object(settings) = settings else {
            if settings.is_null() {
                continue;
            }
            return Err(refuse("an endpoint's settings must be an object"));
        };
        if let Some((key, _)) = settings.iter().find(|(_, v)| !is_unset(v)) {
            return Err(refuse(format!(
                "network setting {key:?} is not allowed: addresses, aliases and links on the \
                 shared network are the proxy's"
            )));
        }
    }
    Ok(())
}

/// Bind mount options an app may give: read-only or not, no copy, private propagation.
fn check_bind_mode(mode: &str) -> Result<(), Refused> {
    for option in mode.split(',') {
        match option {
            "" | "ro" | "rw" | "nocopy" | "private" | "rprivate" => {}
            "z" | "Z" => {
                return Err(refuse(
                    "bind option z/Z relabels host files and is not allowed",
                ));
            }
            other => {
                return Err(refuse(format!(
                    "bind option {other:?} is not allowed (ro, rw, nocopy, private, rprivate are)"
                )));
            }
        }
    }
    Ok(())
}

/// `Binds` (`source:target[:options]`): sources under `/app/data` only, mapped to the host.
fn rewrite_binds(value: &mut Value, scope: &Scope) -> Result<(), Refused> {
    let binds = match value {
        Value::Null => return Ok(()),
        Value::Array(binds) => binds,
        _ => return Err(refuse("Binds must be a list")),
    };
    for bind in binds {
        let Some(text) = bind.as_str() else {
            return Err(refuse("a bind must be a string"));
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [source, target] => (*source, *target, ""),
            [source, target, mode] => (*source, *target, *mode),
            _ => {
                return Err(refuse(format!(
                    "bind {text:?} is not source:target[:options]"
                )));
            }
        };
        if !source.starts_with('/') {
            return Err(refuse(format!(
                "bind of the named volume {source:?} is not allowed: named volumes are shared \
                 by every app of the engine; bind a directory under {APP_DATA} instead"
            )));
        }
        check_bind_mode(mode)?;
        let host = host_source(source, scope)?;
        let rewritten = if mode.is_empty() {
            format!("{host}:{target}")
        } else {
            format!("{host}:{target}:{mode}")
        };
        *bind = Value::String(rewritten);
    }
    Ok(())
}

/// `Mounts`: binds under `/app/data`, anonymous volumes and tmpfs; nothing else.
fn rewrite_mounts(value: &mut Value, scope: &Scope) -> Result<(), Refused> {
    let mounts = match value {
        Value::Null => return Ok(()),
        Value::Array(mounts) => mounts,
        _ => return Err(refuse("Mounts must be a list")),
    };
    for mount in mounts {
        let mount = object(mount, "a mount")?;
        if let Some(key) = mount.keys().find(|k| {
            !matches!(
                k.as_str(),
                "Target"
                    | "Source"
                    | "Type"
                    | "ReadOnly"
                    | "Consistency"
                    | "BindOptions"
                    | "VolumeOptions"
                    | "TmpfsOptions"
            )
        }) {
            return Err(refuse(format!("mount field {key:?} is not known")));
        }
        let kind =
            string_or_empty(mount.get("Type").unwrap_or(&Value::Null), "Mount.Type")?.to_owned();
        let source = string_or_empty(mount.get("Source").unwrap_or(&Value::Null), "Mount.Source")?
            .to_owned();
        let options_set = |key: &str| mount.get(key).is_some_and(|v| !is_unset(v));
        match kind.as_str() {
            "bind" => {
                if options_set("VolumeOptions") || options_set("TmpfsOptions") {
                    return Err(refuse("a bind mount takes only BindOptions"));
                }
                if let Some(options) = mount.get("BindOptions") {
                    check_bind_options(options)?;
                }
                let host = host_source(&source, scope)?;
                mount.insert("Source".to_owned(), Value::String(host));
            }
            "volume" => {
                if !source.is_empty() {
                    return Err(refuse(format!(
                        "mount of the named volume {source:?} is not allowed: named volumes are \
                         shared by every app of the engine; use an anonymous volume or a \
                         directory under {APP_DATA}"
                    )));
                }
                if options_set("BindOptions") || options_set("TmpfsOptions") {
                    return Err(refuse("a volume mount takes only VolumeOptions"));
                }
                if let Some(options) = mount.get("VolumeOptions") {
                    check_volume_options(options)?;
                }
            }
            "tmpfs" => {
                if !source.is_empty() || options_set("BindOptions") || options_set("VolumeOptions")
                {
                    return Err(refuse(
                        "a tmpfs mount takes no source and only TmpfsOptions",
                    ));
                }
            }
            other => {
                return Err(refuse(format!(
                    "mount type {other:?} is not allowed (bind under {APP_DATA}, volume, tmpfs \
                     are)"
                )));
            }
        }
    }
    Ok(())
}

fn check_bind_options(options: &Value) -> Result<(), Refused> {
    let Some(options) = optional_object(options, "BindOptions")? else {
        return Ok(());
    };
    for (key, value) in options {
        match key.as_str() {
            "Propagation" => match string_or_empty(value, "Propagation")? {
                "" | "private" | "rprivate" => {}
                other => {
                    return Err(refuse(format!(
                        "bind propagation {other:?} is not allowed (private, rprivate are)"
                    )));
                }
            },
            "NonRecursive" | "ReadOnlyNonRecursive" | "ReadOnlyForceRecursive" => {}
            "CreateMountpoint" if is_unset(value) => {}
            "CreateMountpoint" => {
                return Err(refuse(
                    "CreateMountpoint is not allowed: a bind source must exist in the app's \
                     data directory",
                ));
            }
            other => return Err(refuse(format!("BindOptions.{other} is not known"))),
        }
    }
    Ok(())
}

fn check_volume_options(options: &Value) -> Result<(), Refused> {
    let Some(options) = optional_object(options, "VolumeOptions")? else {
        return Ok(());
    };
    for (key, value) in options {
        match key.as_str() {
            "NoCopy" => {}
            "Labels" => {
                if let Value::Object(labels) = value
                    && let Some(label) =
                        labels.keys().find(|k| k.starts_with(RESERVED_LABEL_PREFIX))
                {
                    return Err(refuse(format!("volume label {label:?} is the proxy's")));
                }
            }
            "DriverConfig" | "Subpath" if is_unset(value) => {}
            "DriverConfig" => {
                return Err(refuse(
                    "volume driver options are not allowed: they can mount host paths",
                ));
            }
            other => return Err(refuse(format!("VolumeOptions.{other} is not known"))),
        }
    }
    Ok(())
}

/// The host path of bind source `source`, which must name an existing path under
/// `/app/data` that, once every symlink is resolved, is still inside the app's data directory.
pub fn host_source(source: &str, scope: &Scope) -> Result<String, Refused> {
    let Some(data) = &scope.data else {
        return Err(refuse(
            "bind mounts are not available: this fleet's operator gave the Docker proxy no \
             data directories",
        ));
    };
    let relative = Path::new(source).strip_prefix(APP_DATA).map_err(|_| {
        refuse(format!(
            "bind source {source:?} is not allowed: only paths under {APP_DATA} can be bound"
        ))
    })?;
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        || source.contains("//")
    {
        return Err(refuse(format!(
            "bind source {source:?} is not allowed: '.' and '..' are not allowed in it"
        )));
    }
    let root = data.local.canonicalize().map_err(|_| {
        refuse(format!(
            "bind source {source:?}: the app has no data directory on the engine's host"
        ))
    })?;
    let resolved = root.join(relative).canonicalize().map_err(|_| {
        refuse(format!(
            "bind source {source:?} does not exist in the app's data directory; create it first"
        ))
    })?;
    // Symlinks planted in the data directory are followed above: where they end is what
    // counts.
    let inside = resolved.strip_prefix(&root).map_err(|_| {
        refuse(format!(
            "bind source {source:?} leads out of the app's data directory (through a symlink)"
        ))
    })?;
    let host = if inside.as_os_str().is_empty() {
        data.host.clone()
    } else {
        data.host.join(inside)
    };
    host.to_str()
        .filter(|h| !h.contains(':'))
        .map(str::to_owned)
        .ok_or_else(|| {
            refuse(format!(
                "bind source {source:?} has a name the engine cannot take"
            ))
        })
}

/// The fields of an exec instance an app may set; `Privileged` only as false.
const EXEC_FIELDS: &[&str] = &[
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ConsoleSize",
    "Detach",
    "DetachKeys",
    "Tty",
    "Env",
    "Cmd",
    "User",
    "WorkingDir",
];

/// Checks the body of `POST /containers/{id}/exec`; it is forwarded as it is.
pub fn exec_create(body: &[u8]) -> Result<(), Refused> {
    let mut config: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(format!("the exec configuration is not JSON: {e}")))?;
    let config = object(&mut config, "the exec configuration")?;
    for (field, value) in config.iter() {
        match field.as_str() {
            "Privileged" if is_unset(value) => {}
            "Privileged" => {
                return Err(refuse(
                    "Privileged is not allowed: privileged exec owns the host",
                ));
            }
            f if EXEC_FIELDS.contains(&f) => {}
            other => {
                return Err(refuse(format!(
                    "the exec field {other:?} is not known to the fleet's Docker proxy, so it is \
                     refused"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::os::unix::fs::symlink;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        scope: Scope,
        data: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("app1/data");
        std::fs::create_dir_all(data.join("work")).unwrap();
        let scope = Scope {
            app: "app1".into(),
            seal: "s3al".into(),
            network: "fleet-apps".into(),
            data: Some(DataDir {
                local: data.clone(),
                host: PathBuf::from("/srv/apps/app1/data"),
            }),
            allow_published_ports: false,
        };
        Fixture {
            _dir: dir,
            scope,
            data,
        }
    }

    fn create(body: Value, scope: &Scope) -> Result<Value, String> {
        container_create(&serde_json::to_vec(&body).unwrap(), scope)
            .map(|b| serde_json::from_slice(&b).unwrap())
            .map_err(|r| r.0)
    }

    #[test]
    fn a_plain_container_gets_the_network_and_the_labels() {
        let f = fixture();
        let out = create(
            json!({"Image": "busybox", "Cmd": ["true"], "Labels": {"mine": "1"},
                   "HostConfig": {"Privileged": false, "CapAdd": null, "PidMode": "",
                                  "NetworkMode": "default", "MaskedPaths": null}}),
            &f.scope,
        )
        .unwrap();
        assert_eq!(out["Labels"][APP_LABEL], "app1");
        assert_eq!(out["Labels"][SEAL_LABEL], "s3al");
        assert_eq!(out["Labels"]["mine"], "1");
        assert_eq!(out["HostConfig"]["NetworkMode"], "fleet-apps");
        assert_eq!(
            out["NetworkingConfig"],
            json!({"EndpointsConfig": {"fleet-apps": {}}})
        );
    }

    #[test]
    fn escapes_are_refused() {
        let f = fixture();
        for (host, expected) in [
            (json!({"Privileged": true}), "Privileged is not allowed"),
            (json!({"CapAdd": ["SYS_ADMIN"]}), "CapAdd is not allowed"),
            (
                json!({"Devices": [{"PathOnHost": "/dev/sda"}]}),
                "Devices is not allowed",
            ),
            (json!({"DeviceRequests": [{"Count": -1}]}), "DeviceRequests"),
            (
                json!({"DeviceCgroupRules": ["a *:* rwm"]}),
                "DeviceCgroupRules",
            ),
            (
                json!({"SecurityOpt": ["apparmor=unconfined"]}),
                "security option",
            ),
            (json!({"SecurityOpt": ["label=disable"]}), "security option"),
            (json!({"MaskedPaths": []}), "MaskedPaths is not allowed"),
            (json!({"PidMode": "host"}), "PidMode is not allowed"),
            (json!({"IpcMode": "host"}), "IpcMode \"host\""),
            (json!({"UTSMode": "host"}), "UTSMode is not allowed"),
            (json!({"UsernsMode": "host"}), "UsernsMode is not allowed"),
            (json!({"CgroupnsMode": "host"}), "CgroupnsMode \"host\""),
            (json!({"NetworkMode": "host"}), "network mode \"host\""),
            (json!({"NetworkMode": "container:abc"}), "network mode"),
            (json!({"PidMode": "container:abc"}), "PidMode"),
            (json!({"VolumesFrom": ["other"]}), "VolumesFrom"),
            (json!({"VolumeDriver": "local"}), "VolumeDriver"),
            (json!({"Binds": ["/:/host"]}), "only paths under /app/data"),
            (json!({"Binds": ["/app/data/../..:/x"]}), "'..'"),
            (json!({"Binds": ["/app/datax:/x"]}), "only paths under"),
            (json!({"Binds": ["othervol:/x"]}), "named volume"),
            (
                json!({"Binds": ["/app/data/work:/x:rshared"]}),
                "bind option",
            ),
            (json!({"Binds": ["/app/data/work:/x:Z"]}), "z/Z"),
            (json!({"Binds": ["/app/data/missing:/x"]}), "does not exist"),
            (
                json!({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]}),
                "only paths under",
            ),
            (
                json!({"Mounts": [{"Type": "volume", "Source": "shared", "Target": "/x"}]}),
                "named volume",
            ),
            (
                json!({"Mounts": [{"Type": "volume", "Target": "/x", "VolumeOptions":
                    {"DriverConfig": {"Name": "local", "Options": {"device": "/", "o": "bind"}}}}]}),
                "driver options",
            ),
            (
                json!({"Mounts": [{"Type": "bind", "Source": "/app/data/work", "Target": "/x",
                                   "BindOptions": {"Propagation": "rshared"}}]}),
                "propagation",
            ),
            (
                json!({"PortBindings": {"80/tcp": [{"HostPort": "80"}]}}),
                "publishing ports",
            ),
            (json!({"PublishAllPorts": true}), "publishing ports"),
            (json!({"Runtime": "runc"}), "Runtime"),
            (json!({"CgroupParent": "/"}), "CgroupParent"),
            (json!({"Sysctls": {"net.ipv4.ip_forward": "1"}}), "Sysctls"),
            (json!({"OomScoreAdj": -1000}), "OomScoreAdj"),
            (json!({"LogConfig": {"Type": "syslog"}}), "log driver"),
            (json!({"Links": ["other:o"]}), "Links"),
            (json!({"SomethingNew": 1}), "not known"),
        ] {
            let refused = create(json!({"Image": "busybox", "HostConfig": host}), &f.scope)
                .expect_err(&format!("{host} passed"));
            assert!(refused.contains(expected), "{host}: {refused}");
        }
        for (body, expected) in [
            (
                json!({"Labels": {"fleet.docker.app": "other"}}),
                "set by the fleet",
            ),
            (
                json!({"Labels": {"fleet.docker.seal": "x"}}),
                "set by the fleet",
            ),
            (json!({"Unknown": true}), "not known"),
            (
                json!({"NetworkingConfig": {"EndpointsConfig": {"host": {}}}}),
                "network \"host\"",
            ),
            (
                json!({"NetworkingConfig": {"EndpointsConfig": {"fleet-apps":
                    {"Aliases": ["db"]}}}}),
                "Aliases",
            ),
        ] {
            let refused = create(body.clone(), &f.scope).expect_err(&format!("{body} passed"));
            assert!(refused.contains(expected), "{body}: {refused}");
        }
    }

    #[test]
    fn binds_under_app_data_are_mapped_to_the_host() {
        let f = fixture();
        let out = create(
            json!({"HostConfig": {"Binds": ["/app/data/work:/w:ro", "/app/data:/d"],
                   "Mounts": [{"Type": "bind", "Source": "/app/data/work", "Target": "/m"},
                              {"Type": "volume", "Target": "/v"},
                              {"Type": "tmpfs", "Target": "/t"}]}}),
            &f.scope,
        )
        .unwrap();
        assert_eq!(
            out["HostConfig"]["Binds"],
            json!(["/srv/apps/app1/data/work:/w:ro", "/srv/apps/app1/data:/d"])
        );
        assert_eq!(
            out["HostConfig"]["Mounts"][0]["Source"],
            "/srv/apps/app1/data/work"
        );
    }

    #[test]
    fn symlinks_are_followed_and_must_stay_inside() {
        let f = fixture();
        symlink("/", f.data.join("root")).unwrap();
        symlink("../../", f.data.join("up")).unwrap();
        symlink("work", f.data.join("inside")).unwrap();
        for source in ["/app/data/root", "/app/data/up", "/app/data/root/etc"] {
            let refused = host_source(source, &f.scope).unwrap_err().0;
            assert!(
                refused.contains("leads out") || refused.contains("does not exist"),
                "{source}: {refused}"
            );
        }
        assert_eq!(
            host_source("/app/data/inside", &f.scope).unwrap(),
            "/srv/apps/app1/data/work"
        );
    }

    #[test]
    fn without_data_directories_there_are_no_binds() {
        let mut f = fixture();
        f.scope.data = None;
        let refused =
            create(json!({"HostConfig": {"Binds": ["/app/data:/d"]}}), &f.scope).unwrap_err();
        assert!(refused.contains("not available"), "{refused}");
    }

    #[test]
    fn published_ports_when_the_operator_allows_them() {
        let mut f = fixture();
        f.scope.allow_published_ports = true;
        assert!(
            create(
                json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}}),
                &f.scope
            )
            .is_ok()
        );
    }

    #[test]
    fn exec_bodies() {
        assert!(exec_create(br#"{"Cmd":["id"],"Privileged":false,"Tty":true}"#).is_ok());
        assert!(exec_create(br#"{"Cmd":["id"],"Privileged":true}"#).is_err());
        assert!(exec_create(br#"{"Cmd":["id"],"Unknown":1}"#).is_err());
        assert!(exec_create(b"not json").is_err());
    }
}
