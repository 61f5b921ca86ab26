//! `chronos cert`: certificates for trying TLS on a test cluster. `ca` makes the cluster's
//! CA, `node ID` a node certificate (common name `chronos-node-ID`, for the hosts given),
//! `client NAME` a client certificate, each signed by the CA in the same directory. Keys are
//! written readable by their owner only; nothing is overwritten.

use chronos::grpc::tls::{self, Pem};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `chronos cert` makes.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum CertCommand {
    /// Make the cluster's CA: DIR/ca.pem and DIR/ca.key.
    Ca {
        /// Where to write.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
    /// Make node ID's certificate, signed by DIR/ca.pem: DIR/node-ID.pem and DIR/node-ID.key.
    Node {
        /// The node's id.
        id: u64,
        /// The names and addresses clients and peers reach the node at.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
        host: Vec<String>,
        /// Where the CA is and where to write.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
    /// Make a client certificate, signed by DIR/ca.pem: DIR/client-NAME.pem and .key.
    Client {
        /// The client's name.
        name: String,
        /// Where the CA is and where to write.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
}

/// Runs `chronos cert`.
pub fn run(command: CertCommand) -> ExitCode {
    let made = match command {
        CertCommand::Ca { dir } => tls::make_ca().and_then(|ca| write(&dir, "ca", &ca)),
        CertCommand::Node { id, host, dir } => {
            if id == 0 {
                Err("node ids start at 1".into())
            } else {
                read_ca(&dir)
                    .and_then(|ca| tls::make_node_certificate(&ca, id, &host))
                    .and_then(|pem| write(&dir, &format!("node-{id}"), &pem))
            }
        }
        CertCommand::Client { name, dir } => {
            let plain = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if plain {
                read_ca(&dir)
                    .and_then(|ca| tls::make_client_certificate(&ca, &name))
                    .and_then(|pem| write(&dir, &format!("client-{name}"), &pem))
            } else {
                Err(format!("{name:?}: a client name is letters, digits, '-' and '_'"))
            }
        }
    };
    match made {
        Ok(paths) => {
            println!("{paths}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("chronos: {error}");
            ExitCode::from(super::USAGE)
        }
    }
}

/// The CA in `dir`.
fn read_ca(dir: &Path) -> Result<Pem, String> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {} (make the CA first: chronos cert ca --dir {}): {e}",
                path.display(),
                dir.display()
            )
        })
    };
    Ok(Pem { cert: read("ca.pem")?, key: read("ca.key")? })
}

/// Writes `pem` as `dir/name.pem` and `dir/name.key` (never over existing files); returns
/// what it wrote.
fn write(dir: &Path, name: &str, pem: &Pem) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    for path in [&cert, &key] {
        if path.exists() {
            return Err(format!("{} exists already; not overwritten", path.display()));
        }
    }
    let create = |path: &Path, text: &str, private: bool| -> Result<(), String> {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let _ = private;
        let mut file =
            options.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    create(&cert, &pem.cert, false)?;
    create(&key, &pem.key, true)?;
    Ok(format!("{} {}", cert.display(), key.display()))
}
