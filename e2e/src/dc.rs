//! A throwaway Samba Active Directory domain controller on a loopback address, for the DC test
//! tier (`e2e/tests/dc.rs`, run by `scripts/test.d/20-dc`).
//!
//! [`shared`] provisions one domain per test process under a temp dir (first use; later
//! callers wait for it), creates the accounts the scenarios need, starts `samba` on
//! `127.0.0.N` with a TLS certificate issued by a test CA, and returns it. A watchdog process
//! (a few lines of `sh`) waits for the test process to exit, then stops samba with SIGTERM,
//! kills what is left of its process group, and removes the temp dir; so the DC stops even
//! when a test panics or the process is killed.
//!
//! Accounts:
//! - [`GMSA`] (enabled): may be retrieved by [`NODE_DIRECT`] (listed itself) and by
//!   [`NODE_VIA_GROUP`] (through [`NODE_GROUP`]); [`NODE_DENIED`] is in neither.
//! - [`DISABLED_GMSA`]: a gMSA left disabled.
//! - [`RESTRICTED_USER`]: a user denied reading `objectSid` on [`GMSA`].
//!
//! Nothing here talks to anything but 127.0.0.0/8; the DC's `dns forwarder` is removed.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The enabled gMSA the scenarios use.
pub const GMSA: &str = "WebApp1";
/// A gMSA that stays disabled.
pub const DISABLED_GMSA: &str = "Disabled1";
/// A computer listed directly in [`GMSA`]'s `msDS-GroupMSAMembership`.
pub const NODE_DIRECT: &str = "NODE1";
/// A computer allowed through membership of [`NODE_GROUP`].
pub const NODE_VIA_GROUP: &str = "NODE2";
/// A computer that is not allowed.
pub const NODE_DENIED: &str = "NODE3";
/// The group listed in [`GMSA`]'s `msDS-GroupMSAMembership`.
pub const NODE_GROUP: &str = "GmsaNodes";
/// A user that may not read [`GMSA`]'s `objectSid`.
pub const RESTRICTED_USER: &str = "restricted1";

const SAMBA_TOOL: &str = "/usr/bin/samba-tool";
const SAMBA: &str = "/usr/sbin/samba";
/// samba-tool must run on Debian's python (a python3 earlier on PATH lacks the samba module).
const PYTHON: &str = "/usr/bin/python3";
const INSTALL_HINT: &str = "run .ci/install.d/10-samba";

/// A running domain controller.
#[derive(Debug)]
pub struct Dc {
    /// The temp dir holding everything (smb.conf, databases, TLS files, logs, pid file).
    pub dir: PathBuf,
    /// The loopback address it listens on.
    pub ip: Ipv4Addr,
    /// Kerberos realm, e.g. `GMSATEST.EXAMPLE`.
    pub realm: String,
    /// DNS name, e.g. `gmsatest.example`.
    pub dns_name: String,
    /// NetBIOS name, e.g. `GMSATEST`.
    pub netbios: String,
    /// The domain's DN.
    pub base_dn: String,
    /// The Administrator's DN.
    pub admin_dn: String,
    /// A file holding the Administrator's password.
    pub admin_password_file: PathBuf,
    /// The CA that issued the DC's LDAPS certificate (PEM).
    pub ca_file: PathBuf,
    /// A krb5.conf pointing at this KDC only (for `KRB5_CONFIG`).
    pub krb5_conf: PathBuf,
    /// How long provisioning and start took.
    pub startup: Duration,
    pid: u32,
}

/// What [`availability`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// samba, samba-tool, ldbsearch, ldapsearch and kinit are installed and we are root.
    Ready,
    /// Something is missing; the message says what.
    Missing(String),
}

/// Checks the tools the DC tier needs.
pub fn availability() -> Availability {
    let tools = [
        SAMBA,
        SAMBA_TOOL,
        PYTHON,
        "/usr/bin/ldbsearch",
        "/usr/bin/ldapsearch",
        "/usr/bin/kinit",
    ];
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !Path::new(t).exists())
        .collect();
    if !missing.is_empty() {
        return Availability::Missing(format!("missing {}", missing.join(", ")));
    }
    match Command::new("id").arg("-u").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "0" => Availability::Ready,
        _ => Availability::Missing("the Samba DC needs root (it binds ports 88, 389, 636)".into()),
    }
}

static SHARED: OnceLock<std::result::Result<Dc, String>> = OnceLock::new();

/// The process's domain controller, started on first use. Panics when samba is missing or
/// the DC cannot be started: every DC test then fails with the reason, none passes without
/// having run. (`scripts/test.d/20-dc` decides, before any test, whether the tier runs: outside
/// CI without samba it says the tier was skipped and runs none.)
pub fn shared() -> &'static Dc {
    if let Availability::Missing(why) = availability() {
        panic!("the DC tier cannot run: samba not installed or not usable ({why}); {INSTALL_HINT}");
    }
    match SHARED.get_or_init(|| Dc::start().map_err(|e| format!("{e:#}"))) {
        Ok(dc) => dc,
        Err(e) => panic!("could not start the Samba DC: {e}"),
    }
}

impl Dc {
    /// Provisions and starts a domain controller (see the module docs).
    pub fn start() -> Result<Dc> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("gmsa-dc-")
            .tempdir()
            .context("creating the DC's temp dir")?
            .keep();
        let ip = pick_address()?;
        let realm = "GMSATEST.EXAMPLE".to_string();
        let dns_name = realm.to_lowercase();
        let netbios = "GMSATEST".to_string();
        let base_dn = "DC=gmsatest,DC=example".to_string();
        let admin_password = format!("Adm1n!{}", std::process::id());
        let pid_dir = dir.join("run");
        std::fs::create_dir_all(&pid_dir)?;
        // The watchdog first, so that even a failed start is cleaned up.
        spawn_watchdog(&dir, &pid_dir.join("samba.pid"))?;

        let opt = |o: String| format!("--option={o}");
        let d = dir.display();
        let provision_options = [
            opt("ad dc functional level = 2016".into()),
            opt(format!("interfaces = {ip}/8")),
            opt("bind interfaces only = yes".into()),
            opt("disable netbios = yes".into()),
            opt(format!("log file = {d}/log.%m")),
            opt(format!("pid directory = {d}/run")),
            opt(format!("ncalrpc dir = {d}/run/ncalrpc")),
            opt(format!("winbindd socket directory = {d}/run/winbindd")),
            opt("netbios name = DC1".into()),
        ];
        let mut args: Vec<String> = vec![
            "domain".into(),
            "provision".into(),
            format!("--targetdir={d}"),
            format!("--realm={realm}"),
            format!("--domain={netbios}"),
            "--server-role=dc".into(),
            "--dns-backend=SAMBA_INTERNAL".into(),
            format!("--host-ip={ip}"),
            "--host-name=dc1".into(),
            "--function-level=2016".into(),
            format!("--adminpass={admin_password}"),
        ];
        args.extend(provision_options);
        samba_tool_raw(&args).context("samba-tool domain provision")?;

        let smb_conf = dir.join("etc/smb.conf");
        let tls_dir = dir.join("tls");
        write_tls(&tls_dir, ip, &dns_name)?;
        rewrite_smb_conf(&smb_conf, &tls_dir)?;
        let krb5_conf = dir.join("krb5.conf");
        std::fs::write(&krb5_conf, krb5_conf_text(&realm, ip))?;
        let admin_password_file = dir.join("admin.password");
        std::fs::write(&admin_password_file, format!("{admin_password}\n"))?;

        let dc = Dc {
            ip,
            realm,
            dns_name,
            netbios,
            admin_dn: format!("CN=Administrator,CN=Users,{base_dn}"),
            base_dn,
            admin_password_file,
            ca_file: tls_dir.join("ca.pem"),
            krb5_conf,
            startup: Duration::ZERO,
            pid: 0,
            dir,
        };
        dc.create_accounts().context("creating the test accounts")?;
        let mut dc = dc;
        dc.pid = dc.run_samba()?;
        dc.startup = started.elapsed();
        // scripts/test.d/20-dc checks that this pid is gone after the run.
        if let Some(path) = std::env::var_os("GMSA_DC_PID_FILE") {
            std::fs::write(path, dc.pid.to_string()).context("writing GMSA_DC_PID_FILE")?;
        }
        let _ = writeln!(
            std::io::stderr(),
            "DC {} ({}) on {} ready in {:.1}s, samba pid {}, dir {}",
            dc.dns_name,
            dc.netbios,
            dc.ip,
            dc.startup.as_secs_f64(),
            dc.pid,
            dc.dir.display()
        );
        Ok(dc)
    }

    /// `ldaps://127.0.0.N`.
    pub fn server(&self) -> String {
        format!("ldaps://{}", self.ip)
    }

    /// The DC's DNS host name (`dnsHostName`), e.g. `dc1.gmsatest.example`; its LDAP
    /// service principal is `ldap/` and this.
    pub fn host_name(&self) -> String {
        format!("dc1.{}", self.dns_name)
    }

    /// The samba root process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The DN of a computer created by the harness.
    pub fn computer_dn(&self, name: &str) -> String {
        format!("CN={name},CN=Computers,{}", self.base_dn)
    }

    /// The DN of a gMSA created by the harness.
    pub fn gmsa_dn(&self, name: &str) -> String {
        format!("CN={name},CN=Managed Service Accounts,{}", self.base_dn)
    }

    /// The password the harness set for a computer or user it created.
    pub fn password_of(&self, name: &str) -> String {
        format!("{name}-Pa55!{}", std::process::id())
    }

    /// Runs `samba-tool ARGS -s smb.conf -H sam.ldb` (directly on the database).
    pub fn samba_tool(&self, args: &[&str]) -> Result<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push(format!(
            "--configfile={}",
            self.dir.join("etc/smb.conf").display()
        ));
        all.push(format!("--URL={}", self.sam_ldb().display()));
        samba_tool_raw(&all)
    }

    /// `ldbsearch` on the DC's database: the DC's own view, independent of our LDAP code.
    /// Returns `(attribute, value)` pairs of the entries found.
    pub fn ldbsearch(
        &self,
        base: &str,
        scope: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let out = run(Command::new("/usr/bin/ldbsearch")
            .arg("-H")
            .arg(self.sam_ldb())
            .args(["-s", scope, "-b", base, filter])
            .args(attrs))?;
        Ok(out
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                l.split_once(": ")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect())
    }

    /// `ldapsearch` over LDAPS with a simple bind (OpenLDAP's client; independent of ours).
    pub fn ldapsearch(
        &self,
        bind_dn: &str,
        password: &str,
        base: &str,
        attrs: &[&str],
    ) -> Result<Output> {
        Command::new("/usr/bin/ldapsearch")
            .env("LDAPTLS_CACERT", &self.ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .args([
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-x",
                "-H",
                &self.server(),
                "-D",
                bind_dn,
                "-w",
                password,
                "-s",
                "base",
                "-b",
                base,
            ])
            .args(attrs)
            .stdin(Stdio::null())
            .output()
            .context("running ldapsearch")
    }

    fn sam_ldb(&self) -> PathBuf {
        self.dir.join("private/sam.ldb")
    }

    fn create_accounts(&self) -> Result<()> {
        let dns = &self.dns_name;
        // The DC's LDAP service principal (for `--kerberos`). A Windows DC, and a Samba DC
        // through samba_spnupdate, registers it itself; that runs in the `dnsupdate` service,
        // which this DC does not start.
        self.samba_tool(&["spn", "add", &format!("ldap/{}", self.host_name()), "DC1$"])?;
        for gmsa in [GMSA, DISABLED_GMSA] {
            self.samba_tool(&[
                "service-account",
                "create",
                &format!("--name={gmsa}"),
                &format!("--dns-host-name={}.{dns}", gmsa.to_lowercase()),
            ])?;
        }
        self.samba_tool(&["user", "enable", &format!("{GMSA}$")])?;
        for node in [NODE_DIRECT, NODE_VIA_GROUP, NODE_DENIED] {
            self.samba_tool(&["computer", "add", node])?;
            self.samba_tool(&[
                "user",
                "setpassword",
                &format!("{node}$"),
                &format!("--newpassword={}", self.password_of(node)),
            ])?;
        }
        self.samba_tool(&["group", "add", NODE_GROUP])?;
        self.samba_tool(&[
            "group",
            "addmembers",
            NODE_GROUP,
            &format!("{NODE_VIA_GROUP}$"),
        ])?;
        let group_dn = format!("CN={NODE_GROUP},CN=Users,{}", self.base_dn);
        for principal in [format!("{NODE_DIRECT}$"), group_dn] {
            self.samba_tool(&[
                "service-account",
                "group-msa-membership",
                "add",
                &format!("--name={GMSA}"),
                &format!("--principal={principal}"),
            ])?;
        }
        // A user that may not read the gMSA's objectSid (attribute schemaIDGUID
        // bf9679e8-0de6-11d0-a285-00aa003049e2).
        self.samba_tool(&[
            "user",
            "create",
            RESTRICTED_USER,
            &self.password_of(RESTRICTED_USER),
        ])?;
        let sid = self
            .ldbsearch(
                &self.base_dn,
                "sub",
                &format!("(sAMAccountName={RESTRICTED_USER})"),
                &["objectSid"],
            )?
            .into_iter()
            .find(|(k, _)| k == "objectSid")
            .map(|(_, v)| v)
            .context("objectSid of the restricted user")?;
        self.samba_tool(&[
            "dsacl",
            "set",
            &format!("--objectdn={}", self.gmsa_dn(GMSA)),
            &format!("--sddl=(OD;;RP;bf9679e8-0de6-11d0-a285-00aa003049e2;;{sid})"),
        ])?;
        Ok(())
    }

    fn run_samba(&self) -> Result<u32> {
        let conf = self.dir.join("etc/smb.conf");
        let status = Command::new(SAMBA)
            .arg("-s")
            .arg(&conf)
            .arg("-D")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("starting samba")?;
        if !status.success() {
            bail!(
                "samba -s {} -D exited with {status}; see {}/log.*",
                conf.display(),
                self.dir.display()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        let pid_file = self.dir.join("run/samba.pid");
        let ldaps = SocketAddr::from((self.ip, 636));
        loop {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(pid) = pid {
                let kdc = SocketAddr::from((self.ip, 88));
                let up = |addr: &SocketAddr| {
                    TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()
                };
                if up(&ldaps) && up(&kdc) {
                    // The socket may be up before the databases are: wait for a real answer.
                    let out = self.ldapsearch(
                        &self.admin_dn,
                        &self.admin_password()?,
                        &self.base_dn,
                        &["objectGUID"],
                    )?;
                    if out.status.success() {
                        return Ok(pid);
                    }
                }
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    bail!(
                        "samba (pid {pid}) died during start; see {}/log.samba",
                        self.dir.display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "samba did not answer LDAPS on {ldaps} within 90s; see {}/log.samba",
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The Administrator's password.
    pub fn admin_password(&self) -> Result<String> {
        Ok(std::fs::read_to_string(&self.admin_password_file)?
            .trim()
            .to_string())
    }
}

/// Picks 127.0.0.N (N in 53..=250, from the pid) where nothing answers on 389 or 636.
fn pick_address() -> Result<Ipv4Addr> {
    let start = std::process::id() % 198;
    for i in 0..198 {
        let n = 53 + u8::try_from((start + i) % 198).unwrap_or(0);
        let ip = Ipv4Addr::new(127, 0, 0, n);
        let busy = [389u16, 636, 88].iter().any(|port| {
            TcpStream::connect_timeout(&SocketAddr::from((ip, *port)), Duration::from_millis(100))
                .is_ok()
        });
        if !busy {
            return Ok(ip);
        }
    }
    bail!("no free 127.0.0.N address for the DC")
}

/// Removes `dns forwarder` (queries must never leave this machine), trims the services to
/// what a DC for these tests needs (without `-nbt` samba dies at start), and points TLS at
/// the test CA's certificate.
fn rewrite_smb_conf(path: &Path, tls: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut out = String::new();
    for line in text.lines() {
        let key = line.trim().split('=').next().unwrap_or("").trim();
        if key == "dns forwarder" || key == "server services" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[global]" {
            let t = tls.display();
            out.push_str("\tserver services = -nbt, -wrepl, -ntp_signd, -dnsupdate\n");
            out.push_str("\ttls enabled = yes\n");
            out.push_str(&format!("\ttls keyfile = {t}/key.pem\n\ttls certfile = {t}/cert.pem\n\ttls cafile = {t}/ca.pem\n"));
        }
    }
    if out.contains("dns forwarder") {
        bail!("could not remove the dns forwarder from {}", path.display());
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// A test CA and a server certificate for `dc1.<dns>` and the DC's IP (rustls needs SANs;
/// Samba's autogenerated certificate only has a CN).
fn write_tls(dir: &Path, ip: Ipv4Addr, dns: &str) -> Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "gmsa e2e test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec![format!("dc1.{dns}"), ip.to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, format!("dc1.{dns}"));
    let cert = leaf.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, key.serialize_pem())?;
    // Samba refuses a key file others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn krb5_conf_text(realm: &str, ip: Ipv4Addr) -> String {
    // RC4 is allowed so that a key derived from the managed password's NT hash can be used
    // (see tests/dc.rs, node-side proof). No DNS at all (the service principal of `gmsa ...
    // --kerberos` is `ldap/dc1.<domain>`, used as given): only 127.0.0.N is ever contacted.
    let domain = realm.to_ascii_lowercase();
    format!(
        "[libdefaults]\n  default_realm = {realm}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  rdns = false\n  dns_canonicalize_hostname = false\n  allow_weak_crypto = true\n  default_tkt_enctypes = arcfour-hmac\n  permitted_enctypes = arcfour-hmac aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96\n[realms]\n  {realm} = {{\n    kdc = {ip}\n  }}\n[domain_realm]\n  .{domain} = {realm}\n  {domain} = {realm}\n"
    )
}

/// Starts `sh` that waits for this process to exit, then stops samba (SIGTERM, then SIGKILL
/// to its process group after 10 s) and removes `dir`.
fn spawn_watchdog(dir: &Path, pid_file: &Path) -> Result<()> {
    let script = r#"
parent=$1; pidfile=$2; dir=$3
while kill -0 "$parent" 2>/dev/null; do sleep 0.2; done
if [ -s "$pidfile" ]; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL -- "-$pid" 2>/dev/null
  kill -KILL "$pid" 2>/dev/null
fi
case "$dir" in */gmsa-dc-*) rm -rf "$dir" ;; esac
"#;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("gmsa-dc-watchdog")
        .arg(std::process::id().to_string())
        .arg(pid_file)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the DC watchdog")?;
    Ok(())
}

fn samba_tool_raw(args: &[String]) -> Result<String> {
    run(Command::new(PYTHON)
        .arg(SAMBA_TOOL)
        .args(args)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME"))
    .with_context(|| {
        format!(
            "samba-tool {}",
            args.iter().take(3).cloned().collect::<Vec<_>>().join(" ")
        )
    })
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} exited with {}: {}{}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The NT hash (MD4 of the UTF-16LE password) of the current password in an
/// `MSDS-MANAGEDPASSWORD_BLOB` (MS-ADTS 2.2.19): the RC4-HMAC Kerberos key of the gMSA.
pub fn nt_hash_from_managed_password(blob: &[u8]) -> Result<[u8; 16]> {
    use md4::{Digest, Md4};
    if blob.len() < 16 {
        bail!(
            "managed password blob of {} bytes is shorter than its header",
            blob.len()
        );
    }
    let version = u16::from_le_bytes([blob[0], blob[1]]);
    let length = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]);
    let current = usize::from(u16::from_le_bytes([blob[8], blob[9]]));
    if version != 1 || usize::try_from(length).ok() != Some(blob.len()) {
        bail!(
            "managed password blob: version {version}, length {length} for {} bytes",
            blob.len()
        );
    }
    let tail = blob
        .get(current..)
        .context("current password offset past the end")?;
    // UTF-16LE, terminated by a 16-bit NUL.
    let end = tail
        .chunks_exact(2)
        .position(|c| c == [0, 0])
        .context("current password has no terminator")?;
    let password = &tail[..2 * end];
    let digest = Md4::digest(password);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest);
    Ok(key)
}

/// Writes an MIT keytab (format 0x0502) with one RC4-HMAC (type 23) key for
/// `principal@realm` (a single-component principal such as `WebApp1$`).
pub fn write_rc4_keytab(path: &Path, principal: &str, realm: &str, key: &[u8; 16]) -> Result<()> {
    fn counted(out: &mut Vec<u8>, s: &str) -> Result<()> {
        out.extend_from_slice(&u16::try_from(s.len())?.to_be_bytes());
        out.extend_from_slice(s.as_bytes());
        Ok(())
    }
    let mut entry = Vec::new();
    entry.extend_from_slice(&1u16.to_be_bytes()); // components
    counted(&mut entry, realm)?;
    counted(&mut entry, principal)?;
    entry.extend_from_slice(&1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
    entry.extend_from_slice(&0u32.to_be_bytes()); // timestamp
    entry.push(1); // kvno (8 bit)
    entry.extend_from_slice(&23u16.to_be_bytes()); // rc4-hmac
    entry.extend_from_slice(&16u16.to_be_bytes());
    entry.extend_from_slice(key);
    entry.extend_from_slice(&1u32.to_be_bytes()); // kvno (32 bit)
    let mut out = vec![0x05, 0x02];
    out.extend_from_slice(&i32::try_from(entry.len())?.to_be_bytes());
    out.extend_from_slice(&entry);
    std::fs::write(path, out)?;
    Ok(())
}

impl Dc {
    /// `kinit -k -t KEYTAB principal@REALM` against this KDC only, with a fresh credential
    /// cache; on success also the `klist` output. Returns `(success, output)`.
    pub fn kinit_with_keytab(&self, keytab: &Path, principal: &str) -> Result<(bool, String)> {
        let cache = keytab.with_extension("ccache");
        let full = format!("{principal}@{}", self.realm);
        let env = |cmd: &mut Command| {
            self.krb5_env(cmd, &cache).stdin(Stdio::null());
        };
        let mut kinit = Command::new("/usr/bin/kinit");
        kinit.args(["-k", "-t"]).arg(keytab).arg(&full);
        env(&mut kinit);
        let out = kinit.output().context("running kinit")?;
        let mut text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Ok((false, text));
        }
        let mut klist = Command::new("/usr/bin/klist");
        env(&mut klist);
        let listed = klist.output().context("running klist")?;
        text.push_str(&String::from_utf8_lossy(&listed.stdout));
        Ok((listed.status.success(), text))
    }

    /// Points a command at this KDC only (`KRB5_CONFIG`) and at the credential cache `cache`
    /// (`KRB5CCNAME=FILE:cache`).
    pub fn krb5_env<'c>(&self, cmd: &'c mut Command, cache: &Path) -> &'c mut Command {
        cmd.env("KRB5_CONFIG", &self.krb5_conf)
            .env("KRB5CCNAME", format!("FILE:{}", cache.display()))
    }

    /// `kinit principal@REALM` with `password` (on standard input) into the credential cache
    /// `cache`, against this KDC only.
    pub fn kinit_with_password(&self, principal: &str, password: &str, cache: &Path) -> Result<()> {
        let full = format!("{principal}@{}", self.realm);
        let mut kinit = Command::new("/usr/bin/kinit");
        kinit
            .arg(&full)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.krb5_env(&mut kinit, cache);
        let mut child = kinit.spawn().context("running kinit")?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}").context("writing the password to kinit")?;
        }
        let out = child.wait_with_output().context("waiting for kinit")?;
        if !out.status.success() {
            bail!(
                "kinit {full} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}
