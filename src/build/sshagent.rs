//! `RUN --mount=type=ssh`: an ssh-agent socket of hoist's own, with the mount's owner and
//! mode, passing each connection on to the agent given with `--ssh` (as BuildKit's forwarder
//! does). The command can ask the agent to sign; it never sees a key, and nothing of the
//! agent stays in the layer or the cache.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Forwards connections while it lives; the socket file is the caller's to remove.
pub struct AgentForward {
    accepting: tokio::task::JoinHandle<()>,
}

impl AgentForward {
    /// Listens at `at` (mode and owner set before anyone can connect through the mount).
    pub fn start(agent: PathBuf, at: &Path, mode: u32, uid: u32, gid: u32) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let listener = tokio::net::UnixListener::bind(at).map_err(|e| Error::io(at, e))?;
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| Error::io(at, e))?;
        std::os::unix::fs::lchown(at, Some(uid), Some(gid)).map_err(|e| Error::io(at, e))?;
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let agent = agent.clone();
                tokio::spawn(async move {
                    // An agent gone away is the command's error to report (ssh says it).
                    if let Ok(mut outbound) = tokio::net::UnixStream::connect(&agent).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(AgentForward { accepting })
    }
}

impl Drop for AgentForward {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// `--ssh` values, by id: `default` is `$SSH_AUTH_SOCK`, `ID=SOCKET` names one. Only agent
/// sockets: a key file is refused with what to do instead.
pub fn parse_sockets(
    items: &[String],
    auth_sock: Option<&str>,
) -> Result<std::collections::BTreeMap<String, PathBuf>> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = std::collections::BTreeMap::new();
    for item in items {
        let (id, path) = match item.split_once('=') {
            Some((id, path)) if !id.is_empty() && !path.is_empty() => (id, path),
            Some(_) => return Err(Error::Usage(format!("--ssh `{item}`: expected ID=SOCKET"))),
            None => match auth_sock {
                Some(sock) if !sock.is_empty() => (item.as_str(), sock),
                _ => {
                    return Err(Error::Usage(format!(
                        "--ssh {item}: SSH_AUTH_SOCK is not set; start ssh-agent (eval \"$(ssh-agent)\"; ssh-add KEY) or give the socket: --ssh {item}=SOCKET"
                    )));
                }
            },
        };
        let path = PathBuf::from(path);
        let is_socket = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .file_type()
            .is_socket();
        if !is_socket {
            return Err(Error::Usage(format!(
                "--ssh {id}={}: not an ssh-agent socket (hoist forwards agents, not key files: ssh-add the key to an agent and pass its SSH_AUTH_SOCK)",
                path.display()
            )));
        }
        out.insert(id.to_string(), path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_by_id_and_what_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "not a socket").unwrap();
        let sock_str = sock.to_str().unwrap();
        let parsed = parse_sockets(
            &["default".into(), format!("deploy={sock_str}")],
            Some(sock_str),
        )
        .unwrap();
        assert_eq!(parsed["default"], sock);
        assert_eq!(parsed["deploy"], sock);
        let err = |items: &[String], env: Option<&str>| {
            parse_sockets(items, env).unwrap_err().to_string()
        };
        assert!(err(&["default".into()], None).contains("SSH_AUTH_SOCK is not set"));
        let keyfile = format!("default={}", key.display());
        assert!(err(&[keyfile], None).contains("not an ssh-agent socket"));
        assert!(err(&["=x".into()], None).contains("expected ID=SOCKET"));
    }

    #[tokio::test]
    async fn connections_reach_the_agent_through_the_forward() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&agent).unwrap();
        let echo = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            stream.read_exact(&mut buf).await.unwrap();
            stream.write_all(&buf).await.unwrap();
        });
        let at = dir.path().join("forward.sock");
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(dir.path()).unwrap();
        let (uid, gid) = (owner.uid(), owner.gid());
        let forward = AgentForward::start(agent, &at, 0o600, uid, gid).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&at).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut client = tokio::net::UnixStream::connect(&at).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        echo.await.unwrap();
        drop(forward);
    }
}
