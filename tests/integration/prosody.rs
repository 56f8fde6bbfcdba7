//! A real server: Debian's Prosody 0.12, federating inside the testnet.
//!
//! The simulated profiles encode what we *believe* servers do; this test
//! checks the crawler against the server whose behaviour the `lenient`
//! profile copies. Prosody validates a peer's TLS client certificate as if
//! it were a server certificate (LuaSec's `lsec_ignore_purpose`), so it
//! must accept SASL EXTERNAL from a peer holding a server-only certificate.
//!
//! Set-up, all generated into a temp dir from `tests/prosody/`:
//! - Prosody is installed by `tests/prosody/install.sh` when missing (the
//!   packaged system service is never started, and is disabled);
//! - the testnet serves zone `xs.test` on 127.60.0.1:53 with SRV/A records
//!   for `prosody.xs.test` → 127.60.0.9 and `probe.xs.test` → 127.60.0.2;
//! - Prosody gets a certificate from the testnet CA, trusts only that CA,
//!   listens only on 127.60.0.9, and resolves only through the testnet DNS
//!   (libunbound pointed at a generated `resolv.conf`, which is also
//!   bind-mounted over `/etc/resolv.conf` in a private mount namespace);
//! - the test owns the process and kills it by pid, also on failure,
//!   printing Prosody's log.

use crate::support::{context, prober, with_acceptance};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::probe::endpoint::{ConnectOptions, ProbeContext, open_session};
use xmpp_survey::probe::plan::EndpointPlan;
use xmpp_survey::probe::report::{EndpointKey, EndpointOutcome, EndpointSource, Transport};
use xmpp_survey::s2s::steps;
use xmpp_survey::testnet::profile::CertShape;
use xmpp_survey::testnet::{External, Testnet, TestnetConfig};
use xmpp_survey::tls::{ChainVerdict, EkuClass};
use xmpp_survey::verdict::ServiceStatus;
use xmpp_survey::xmpp::Service;
use xmpp_survey::xmpp::features::StarttlsOffer;
use xmpp_survey::xmpp::sasl::SaslOutcome;

/// The lenient-config test's block, 127.60.0.0/16.
const NET: u8 = 60;
/// The Debian-stock-config test's block, 127.61.0.0/16 (both tests may run
/// at once: each has its own DNS on port 53 and its own Prosody address).
const STOCK_NET: u8 = 61;
/// Debian's configuration file, used as installed by the stock test.
const DEBIAN_CONFIG: &str = "/etc/prosody/prosody.cfg.lua";
/// What the stock test appends to Debian's file, with the same placeholders.
const STOCK_OVERRIDES: &str = include_str!("../prosody/debian-stock-overrides.cfg.lua.in");
/// The real server's XMPP domain, inside the testnet zone.
const DOMAIN: &str = "prosody.xs.test";
/// Prosody's configuration, with `@DIR@`, `@IP@` and `@DOMAIN@` to fill.
const TEMPLATE: &str = include_str!("../prosody/prosody.cfg.lua.in");
/// Prosody starts in about a second; a slow CI machine gets more.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long Prosody gets to call our address back (DNS + connect).
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Prosody's address: in the test's block, outside the testnet's own
/// (`.0.1` DNS, `.0.2` probe, `.0.3` dead, `.1.x` and up simulated hosts).
fn prosody_ip(net: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, net, 0, 9)
}

/// Which configuration Prosody runs with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    /// `tests/prosody/prosody.cfg.lua.in`: minimal, `s2s_secure_auth = false`.
    Lenient,
    /// Debian's `/etc/prosody/prosody.cfg.lua` as installed, then
    /// `debian-stock-overrides.cfg.lua.in` (ports, interfaces, host,
    /// certificates, DNS, file locations only).
    DebianStock,
}

/// The generated files and the running Prosody. Dropping it kills the
/// process by pid and waits for it; when the test is failing it prints
/// Prosody's log and keeps the directory for a post-mortem.
struct Prosody {
    dir: PathBuf,
    ip: Ipv4Addr,
    child: Option<Child>,
}

impl Prosody {
    /// Renders the configuration and every file it names into a new temp
    /// dir. Prosody is not started yet.
    fn prepare(net: &Testnet, ip: Ipv4Addr, config: Config) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "xmpp-survey-prosody-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("create temp dir");
        std::fs::create_dir_all(dir.join("capath")).expect("create capath");
        // The stock file's `Include "conf.d/*.cfg.lua"` and `certificates`
        // resolve here: empty, so only our host is served.
        std::fs::create_dir_all(dir.join("conf.d")).expect("create conf.d");
        std::fs::create_dir_all(dir.join("certs")).expect("create certs");
        let me = Self {
            dir,
            ip,
            child: None,
        };
        let d = me.dir.to_str().expect("temp dir is UTF-8");
        assert!(
            !d.contains(['"', '\\', '\n']),
            "temp dir {d:?} cannot go into a Lua string"
        );

        let cert = net
            .issue(DOMAIN, CertShape::ClientAndServer)
            .expect("testnet CA issues Prosody's certificate");
        me.write("cert.pem", &cert.chain_pem());
        me.write("key.pem", &cert.key_pem());
        me.write("ca.pem", &net.ca_pem());
        // The only nameserver Prosody may ask; libunbound reads only the
        // `nameserver` lines, and only port 53.
        let dns = net.dns_addr();
        assert_eq!(
            dns.port(),
            53,
            "Prosody can only use a DNS server on port 53"
        );
        me.write("resolv.conf", &format!("nameserver {}\n", dns.ip()));
        // No test name in here: every `xs.test` answer must come from DNS.
        me.write("hosts", "127.0.0.1 localhost\n::1 localhost\n");
        let text = match config {
            Config::Lenient => render(TEMPLATE, d, ip),
            Config::DebianStock => {
                let stock = std::fs::read_to_string(DEBIAN_CONFIG)
                    .unwrap_or_else(|e| panic!("read {DEBIAN_CONFIG}: {e}"));
                assert!(
                    stock.contains("\ns2s_secure_auth = true\n"),
                    "{DEBIAN_CONFIG} is not Debian's stock file (no `s2s_secure_auth = true`)"
                );
                format!("{stock}\n{}", render(STOCK_OVERRIDES, d, ip))
            }
        };
        me.write("prosody.cfg.lua", &text);
        me
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.path(name).display()));
    }

    /// Prosody's log plus what it printed to stdout/stderr (configuration
    /// errors go there, before logging is set up).
    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.path(n)).unwrap_or_default();
        format!(
            "--- prosody output ---\n{}--- {} ---\n{}",
            read("output.log"),
            self.path("prosody.log").display(),
            read("prosody.log")
        )
    }

    /// Starts Prosody in its own mount namespace, where `/etc/resolv.conf`
    /// and `/etc/hosts` are our generated files; `unshare` and `sh` exec,
    /// so the child's pid is Prosody's.
    fn start(&mut self) {
        // A stale Prosody (e.g. from a killed test run) would answer our
        // probes while the new one fails to bind: insist on free ports.
        for port in [5222, 5269] {
            let addr = SocketAddr::new(IpAddr::V4(self.ip), port);
            assert!(
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
                "something already listens on {addr} (a stale Prosody? `ss -ltnp`)"
            );
        }
        let output = std::fs::File::create(self.path("output.log")).expect("output.log");
        let mut cmd = Command::new("unshare");
        if !is_root() {
            // Unprivileged: a user namespace makes the bind mounts possible.
            cmd.arg("--user").arg("--map-root-user");
        }
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(concat!(
                "mount --bind \"$1\" /etc/resolv.conf && ",
                "mount --bind \"$2\" /etc/hosts && ",
                "exec prosody -F --config \"$3\""
            ))
            .arg("sh")
            .arg(self.path("resolv.conf"))
            .arg(self.path("hosts"))
            .arg(self.path("prosody.cfg.lua"))
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("dup output.log"))
            .stderr(output);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare/prosody: {e}"));
        self.child = Some(child);
    }

    /// Waits until c2s and s2s accept connections; fails (with the log)
    /// if Prosody exits or does not listen in time.
    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("Prosody exited during start-up ({status})");
            }
            let ip = self.ip;
            let up = |port| TcpStream::connect(SocketAddr::new(IpAddr::V4(ip), port));
            if up(5222).await.is_ok() && up(5269).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prosody did not listen on {}:5222 and :5269 within {START_TIMEOUT:?}",
                self.ip
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (Prosody shuts down cleanly), then SIGKILL after a grace
    /// period; always reaps the child.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
            eprintln!("(kept {} for inspection)", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Fills a template; every placeholder must be used up.
fn render(template: &str, dir: &str, ip: Ipv4Addr) -> String {
    let out = template
        .replace("@DIR@", dir)
        .replace("@IP@", &ip.to_string())
        .replace("@DOMAIN@", DOMAIN);
    let left: Vec<&str> = out
        .split('@')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()))
        .collect();
    assert!(
        left.is_empty(),
        "unfilled placeholders in the template: {left:?}"
    );
    out
}

/// Installs Prosody when missing; a failure to install fails the test.
fn ensure_installed() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prosody/install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The probe context the acceptance probe uses: testnet CA, our domain
/// as `from` on s2s streams.
fn probe_context(net: &Testnet) -> ProbeContext {
    context(
        net,
        Some(net.probe_identity().expect("probe identity").domain),
    )
}

/// Prosody's s2s endpoint, as DNS names it.
fn s2s_plan(ip: Ipv4Addr) -> EndpointPlan {
    EndpointPlan {
        key: EndpointKey {
            service: Service::S2s,
            transport: Transport::Starttls,
            host: DOMAIN.to_string(),
            ip: IpAddr::V4(ip),
            port: 5269,
        },
        source: EndpointSource::Srv,
        tlsa: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_federates_in_the_testnet() {
    let t0 = Instant::now();
    ensure_installed();
    xmpp_survey::install_crypto_provider();
    let net = Testnet::start(TestnetConfig {
        domains: 1,
        seed: 42,
        net: NET,
        dns_port: 53,
        profiles: vec!["srv_ok".to_string()],
        generation: 0,
        per_host: xmpp_survey::testnet::layout::SHARED_PER_HOST,
        dedicated_by_profile: false,
        external: vec![External {
            domain: DOMAIN.to_string(),
            ip: prosody_ip(NET),
        }],
    })
    .await
    .expect("testnet starts (DNS on port 53 needs root or CAP_NET_BIND_SERVICE)");

    let mut prosody = Prosody::prepare(&net, prosody_ip(NET), Config::Lenient);
    prosody.start();
    prosody.wait_listening().await;
    println!("Prosody listening after {:?}", t0.elapsed());

    passive_probe(&net).await;
    s2s_by_hand(&net, &prosody).await;
    active_probe(&net).await;

    let log = prosody.logs();
    assert!(
        !log.contains("Using legacy DNS API"),
        "Prosody fell back to net.dns instead of libunbound"
    );
    prosody.stop();
    net.shutdown().await;
    println!("Prosody test took {:?}", t0.elapsed());
}

/// The passive probe, exactly as a crawl runs it: both services reach
/// TLS, STARTTLS is required on s2s, the chain is trusted, dialback is
/// offered.
async fn passive_probe(net: &Testnet) {
    let report = prober(net, AddressPolicy::ALLOW_PRIVATE)
        .probe(DOMAIN)
        .await;
    println!("{}", xmpp_survey::probe::render::domain(&report));
    for e in &report.endpoints {
        println!(
            "{:?} {}:{} pre-TLS {:?}\n  post-TLS {:?}",
            e.key.service, e.key.ip, e.key.port, e.pre_tls, e.post_tls
        );
    }
    let s = &report.summary;
    assert_eq!(s.c2s.status, ServiceStatus::TlsOk, "c2s: {s:?}");
    assert_eq!(s.s2s.status, ServiceStatus::TlsOk, "s2s: {s:?}");
    assert_eq!(s.c2s.starttls, Some(StarttlsOffer::Required));
    assert_eq!(s.s2s.starttls, Some(StarttlsOffer::Required));
    assert_eq!(s.c2s.chain_verdict, Some(ChainVerdict::Trusted));
    assert_eq!(s.s2s.chain_verdict, Some(ChainVerdict::Trusted));
    assert_eq!(s.s2s.eku_class, Some(EkuClass::ClientAndServer));
    assert_eq!(s.s2s.dialback_offered, Some(true));
    // Prosody asks every s2s peer for a certificate (verify = peer,
    // client_once), but offers EXTERNAL only to a peer that sent a valid
    // one, which the passive probe never does.
    assert_eq!(s.s2s.client_cert_requested, Some(true));
    assert_eq!(s.s2s.external_offered, Some(false));
}

/// What the acceptance probe will do, by hand with the s2s steps that
/// exist today, plus a stand-in for our listener on 127.60.0.2:5269:
/// 1. STARTTLS presenting the server-only certificate; Prosody asks for it,
///    offers EXTERNAL and answers `<success/>`;
/// 2. on a second stream, `<db:result>`: Prosody looks `probe.xs.test` up
///    in the testnet DNS and calls 127.60.0.2:5269 to `db:verify` it, which
///    proves it resolves through our DNS server (no other resolver knows
///    `xs.test`). The stand-in only reads Prosody's stream header.
async fn s2s_by_hand(net: &Testnet, prosody: &Prosody) {
    let identity = net.probe_identity().expect("probe identity");
    let ctx = probe_context(net);
    let limit = Duration::from_secs(5);
    let with_cert = ConnectOptions {
        client_cert: Some(identity.server_only.key.clone()),
    };

    // 1. EXTERNAL with the server-only certificate.
    let (report, session) =
        open_session(&ctx, DOMAIN, &s2s_plan(prosody_ip(NET)), &with_cert).await;
    let Some(mut session) = session else {
        panic!("s2s with a client certificate: {report:?}");
    };
    let tls = session.capture.snapshot();
    assert!(
        tls.client_cert_requested,
        "Prosody asks for a client certificate"
    );
    assert!(tls.client_cert_sent, "we sent the server-only certificate");
    println!(
        "s2s post-TLS features with the server-only certificate: {:?}",
        session.features
    );
    assert!(
        session
            .features
            .sasl_mechanisms
            .iter()
            .any(|m| m == "EXTERNAL"),
        "EXTERNAL offered to a peer with a valid server-only certificate"
    );
    let (outcome, after) =
        steps::auth_external(&mut session.stream, &identity.domain, DOMAIN, limit)
            .await
            .expect("EXTERNAL exchange");
    assert_eq!(
        outcome,
        SaslOutcome::Success,
        "Prosody accepts server-only certificates"
    );
    println!("features after EXTERNAL: {after:?}");
    session.close().await;

    // 2. Dialback: Prosody must call probe.xs.test back via our DNS.
    let stand_in = TcpListener::bind(identity.listen)
        .await
        .unwrap_or_else(|e| panic!("bind stand-in listener on {}: {e}", identity.listen));
    let (report, session) =
        open_session(&ctx, DOMAIN, &s2s_plan(prosody_ip(NET)), &with_cert).await;
    let Some(mut session) = session else {
        panic!("second s2s stream: {report:?}");
    };
    assert_eq!(report.outcome, EndpointOutcome::Complete);
    let key = "0123456789abcdef";
    let listen = identity.listen;
    let dialback = tokio::spawn(async move {
        let a = steps::dialback(&mut session.stream, &identity.domain, DOMAIN, key, limit).await;
        session.close().await;
        a
    });
    let (mut conn, peer) = tokio::time::timeout(CALLBACK_TIMEOUT, stand_in.accept())
        .await
        .unwrap_or_else(|_| panic!("Prosody never connected to {listen} for db:verify (DNS?)"))
        .expect("accept");
    let mut header = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&header).contains("<stream:stream") || !header.ends_with(b">") {
        match tokio::time::timeout(limit, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => header.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let header = String::from_utf8_lossy(&header).into_owned();
    println!("Prosody called back from {peer}: {header}");
    assert!(
        header.contains("to='probe.xs.test'") && header.contains("from='prosody.xs.test'"),
        "Prosody's outgoing stream header: {header}"
    );
    // Our part ends here: answering `db:verify` is the listener's job
    // (see `active_probe`).
    drop(conn);
    dialback.abort();
    let log = prosody.logs();
    assert!(
        log.contains("Resolve _xmpp-server._tcp.probe.xs.test"),
        "Prosody looked the callback target up through libunbound"
    );
}

/// The whole `Prober` with the testnet's probe identity and our dialback
/// listener on 127.NET.0.2:5269, against Prosody.
async fn probe_with_identity(net: &Testnet) -> xmpp_survey::probe::report::DomainReport {
    use xmpp_survey::probe::Prober;

    let ctx = probe_context(net);
    let base = Prober::new(
        xmpp_survey::testnet::harness::resolver_with(net, ctx.limits.dns_timeout),
        ctx,
    );
    let (prober, listener, _) = with_acceptance(net, base).await;
    let full = prober.probe(DOMAIN).await;
    listener.shutdown().await;
    println!("{}", xmpp_survey::probe::render::domain(&full));
    full
}

/// The acceptance probe against the real Prosody: the whole `Prober` with
/// the testnet's probe identity and our dialback listener on
/// 127.60.0.2:5269 (started after `s2s_by_hand` dropped its stand-in).
/// Prosody validates client certificates as server certificates, so the
/// server-only certificate must be accepted; it must also call our listener
/// back for dialback and report its version.
async fn active_probe(net: &Testnet) {
    use xmpp_survey::acceptance::{AcceptanceVerdict, DialbackOutcome};
    let full = probe_with_identity(net).await;
    let report = full.acceptance.clone().expect("the acceptance probe ran");

    assert_eq!(
        report.verdict,
        AcceptanceVerdict::AcceptsServerOnly,
        "{:?}",
        report.reason
    );
    let db = report
        .dialback
        .as_ref()
        .expect("dialback attempted (Prosody offers it)");
    assert_eq!(
        db.outcome,
        DialbackOutcome::Valid,
        "Prosody called our listener back"
    );
    assert!(db.verify_received, "Prosody sent db:verify to our listener");
    let sw = report.software.as_ref().expect("software version");
    assert_eq!(sw.name.as_deref(), Some("Prosody"));
    assert!(
        sw.version.as_deref().is_some_and(|v| v.starts_with("0.12")),
        "version {:?}",
        sw.version
    );
}

/// Debian's Prosody with the configuration file Debian ships
/// (`s2s_secure_auth = true`): it refuses the passive probe's
/// certificate-less s2s stream after TLS with `<not-authorized/>`, yet
/// accepts a peer presenting a server-only certificate. The passive summary
/// must keep the TLS facts, and the acceptance probe must run and report
/// `accepts_server_only` with EXTERNAL success, the dialback outcome and
/// the version query's real answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_with_debian_stock_config_accepts_server_only() {
    use xmpp_survey::acceptance::{AcceptanceReason, AcceptanceVerdict, IqOutcome, ProbeCertKind};
    ensure_installed();
    xmpp_survey::install_crypto_provider();
    let ip = prosody_ip(STOCK_NET);
    let net = Testnet::start(TestnetConfig {
        domains: 1,
        seed: 42,
        net: STOCK_NET,
        dns_port: 53,
        profiles: vec!["srv_ok".to_string()],
        generation: 0,
        per_host: xmpp_survey::testnet::layout::SHARED_PER_HOST,
        dedicated_by_profile: false,
        external: vec![External {
            domain: DOMAIN.to_string(),
            ip,
        }],
    })
    .await
    .expect("testnet starts (DNS on port 53 needs root or CAP_NET_BIND_SERVICE)");
    let mut prosody = Prosody::prepare(&net, ip, Config::DebianStock);
    prosody.start();
    prosody.wait_listening().await;

    let full = probe_with_identity(&net).await;
    // The passive s2s stream: TLS 1.3, trusted chain, a CertificateRequest,
    // then `<not-authorized/>` instead of features.
    let passive = full
        .endpoints
        .iter()
        .find(|e| e.key.service == Service::S2s)
        .expect("an s2s endpoint");
    assert_eq!(passive.outcome, EndpointOutcome::StreamError, "{passive:?}");
    assert_eq!(
        passive.stream_error.as_ref().map(|e| e.condition.as_str()),
        Some("not-authorized")
    );
    let s2s = &full.summary.s2s;
    assert_eq!(s2s.status, ServiceStatus::TlsOk, "{s2s:?}");
    assert_eq!(s2s.tls_version.as_deref(), Some("TLSv1.3"));
    assert_eq!(s2s.chain_verdict, Some(ChainVerdict::Trusted));
    assert_eq!(s2s.eku_class, Some(EkuClass::ClientAndServer));
    assert_eq!(s2s.client_cert_requested, Some(true));

    let a = full.acceptance.as_ref().expect("the acceptance probe ran");
    assert_eq!(
        (a.verdict, a.reason_code),
        (
            AcceptanceVerdict::AcceptsServerOnly,
            AcceptanceReason::ExternalSucceeded
        ),
        "{:?}",
        a.reason
    );
    let so = a
        .attempts
        .iter()
        .find(|x| x.cert == ProbeCertKind::ServerOnly)
        .expect("server-only attempt");
    assert_eq!(so.external, Some(SaslOutcome::Success));
    assert_eq!(so.ping, IqOutcome::Result, "Prosody's mod_ping answers");
    assert_eq!(
        so.version_query,
        IqOutcome::Result,
        "Debian enables mod_version"
    );
    let sw = a.software.as_ref().expect("software version");
    assert_eq!(sw.name.as_deref(), Some("Prosody"));
    let db = a.dialback.as_ref().expect("dialback attempted");
    // Seen on Debian 12's Prosody 0.12.3: secure_auth does not stop
    // dialback from a peer whose certificate validates.
    assert_eq!(
        db.outcome,
        xmpp_survey::acceptance::DialbackOutcome::Valid,
        "dialback with the server-only certificate"
    );
    assert!(db.verify_received, "Prosody sent db:verify to our listener");
    assert!(
        !prosody.logs().contains("Using legacy DNS API"),
        "Prosody fell back to net.dns instead of libunbound"
    );
    prosody.stop();
    net.shutdown().await;
}
