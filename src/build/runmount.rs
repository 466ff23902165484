//! `RUN --mount=...` values, parsed after variable expansion as BuildKit's parseMount
//! (frontend/dockerfile/instructions/commands_runmount.go) and completed as dispatchRunMounts
//! and dispatchSecret (dockerfile2llb) do: default ids, targets and read-only flags.

use super::dockerfile::csv_fields;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// A stage or image (bind, cache); empty: the build context (bind) or nothing (cache).
    pub from: String,
    pub source: String,
    /// Absolute (relative targets are joined to the working directory).
    pub target: String,
    pub readonly: bool,
    pub required: bool,
    pub size: Option<u64>,
    /// Cache and secret id.
    pub id: String,
    pub sharing: Sharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Secret as an environment variable.
    pub env: Option<String>,
}

/// `64m`, `1g`, `512k`, `100` (bytes): docker's units.RAMInBytes (binary multiples).
fn ram_in_bytes(value: &str) -> Option<u64> {
    let lower = value.trim().to_ascii_lowercase();
    let number_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((number * factor as f64) as u64)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

/// Parses one `--mount` value; `expand` expands variables in values; `workdir` completes
/// relative targets.
pub fn parse(
    value: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
    workdir: &str,
) -> Result<Mount, String> {
    let fields = csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = Mount {
        kind: MountType::Bind,
        from: String::new(),
        source: String::new(),
        target: String::new(),
        readonly: true,
        required: false,
        size: None,
        id: String::new(),
        sharing: Sharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        env: None,
    };
    let mut sharing_set = false;
    let mut ro_auto = true;
    let type_name = |m: &Mount| format!("{:?}", m.kind).to_lowercase();
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true;
                }
                "required" => {
                    return Err(format!(
                        "unexpected key 'required' for mount type '{}'",
                        type_name(&m)
                    ));
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_lowercase();
        let value = expand(value)?;
        let number = |radix: u32| {
            u32::from_str_radix(&value, radix)
                .map_err(|_| format!("invalid value {value} for {key}"))
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(format!("unsupported mount type \"{value}\"")),
                }
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                m.required = parse_bool(&key, &value)?;
            }
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| format!("invalid value for size: {value}"))?,
                );
            }
            "required" | "size" => {
                return Err(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    type_name(&m)
                ));
            }
            "id" => m.id = value,
            "sharing" => {
                m.sharing = match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(format!("unsupported sharing value \"{value}\"")),
                };
                sharing_set = true;
            }
            "mode" => m.mode = Some(number(8)?),
            "uid" => m.uid = Some(number(10)?),
            "gid" => m.gid = Some(number(10)?),
            "env" => m.env = Some(value),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (name, given) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if given {
                return Err(format!(
                    "{name} not allowed for \"{}\" type mounts",
                    type_name(&m)
                ));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if sharing_set && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            type_name(&m)
        ));
    }
    match m.kind {
        MountType::Secret => {
            if !m.from.is_empty() {
                return Err("secret mount should not have a from".into());
            }
            if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if !m.source.is_empty() && !m.id.is_empty() {
                return Err("both source and id can't be set".into());
            }
            // dispatchSecret: the id is the source, else the id, else the target's name.
            if !m.source.is_empty() {
                m.id = m.source.clone();
            }
            if m.id.is_empty() {
                m.id = base_name(&m.target).to_string();
            }
            if m.env.is_none() && m.target.is_empty() {
                m.target = format!("/run/secrets/{}", base_name(&m.id));
            }
        }
        MountType::Cache if m.id.is_empty() => {
            // path.Clean of the target as written (relative stays relative).
            let clean = super::fsview::clean_abs(&m.target);
            m.id = if m.target.starts_with('/') {
                clean
            } else {
                clean.trim_start_matches('/').to_string()
            };
        }
        _ => {}
    }
    // Secrets and ssh sockets have default targets (set where they are mounted for ssh).
    if !m.target.is_empty() || !matches!(m.kind, MountType::Secret | MountType::Ssh) {
        let target = if m.target.starts_with('/') {
            m.target.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), m.target)
        };
        let target = super::fsview::clean_abs(&target);
        if target == "/" {
            return Err(format!("invalid mount target \"{target}\""));
        }
        m.target = target;
    }
    Ok(m)
}

fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(value: &str) -> Result<Mount, String> {
        parse(value, &mut |v| Ok(v.replace("$X", "x")), "/work")
    }

    #[test]
    fn defaults_per_type() {
        let bind = mount("target=/src").unwrap();
        assert_eq!(
            (bind.kind, bind.readonly, bind.target.as_str()),
            (MountType::Bind, true, "/src")
        );
        let cache = mount("type=cache,target=.cache/$X").unwrap();
        assert_eq!(cache.target, "/work/.cache/x");
        assert_eq!(cache.id, ".cache/x");
        assert!(!cache.readonly);
        assert_eq!(cache.sharing, Sharing::Shared);
        let tmpfs = mount("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(tmpfs.size, Some(64 << 20));
        let secret = mount("type=secret,id=npmrc").unwrap();
        assert_eq!(secret.target, "/run/secrets/npmrc");
        assert!(secret.readonly && !secret.required);
        let env = mount("type=secret,id=token,env=TOKEN,required").unwrap();
        assert_eq!(
            (env.target.as_str(), env.env.as_deref()),
            ("", Some("TOKEN"))
        );
        assert!(env.required);
        let by_target = mount("type=secret,target=/root/.aws/credentials,mode=0440,uid=1").unwrap();
        assert_eq!(by_target.id, "credentials");
        assert_eq!((by_target.mode, by_target.uid), (Some(0o440), Some(1)));
        let rw = mount("type=bind,from=build,source=/out,target=/o,rw").unwrap();
        assert!(!rw.readonly);
        assert_eq!(rw.from, "build");
    }

    #[test]
    fn errors_as_buildkit_words_them() {
        for (value, error) in [
            ("type=nfs,target=/x", "unsupported mount type \"nfs\""),
            (
                "type=bind,target=/x,mode=0600",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=cache,target=/x,required",
                "unexpected key 'required' for mount type 'cache'",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=secret,source=a,id=b",
                "both source and id can't be set",
            ),
            (
                "type=bind,target=/x,sharing=locked",
                "invalid cache sharing set for bind mount",
            ),
            ("type=cache,target=/", "invalid mount target \"/\""),
            (
                "type=bind,target=/x,color=red",
                "unexpected key 'color' in 'color=red'",
            ),
            (
                "type=bind,target",
                "invalid field 'target' must be a key=value pair",
            ),
            (
                "type=tmpfs,target=/t,size=lots",
                "invalid value for size: lots",
            ),
            (
                "type=cache,target=/c,uid=root",
                "invalid value root for uid",
            ),
        ] {
            assert_eq!(mount(value).unwrap_err(), error, "{value}");
        }
    }
}
