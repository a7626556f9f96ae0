//! A real network between parties: each party of a [`crate::process::ProcessFederation`]
//! started with [`crate::process::ProcessOptions::network`] runs its services in a network
//! namespace of its own, joined by a veth pair to a router namespace that forwards between
//! them; a test degrades that network while the parties run.
//!
//! - Party `i` (in the order given to [`Network::new`]) has `10.201.i.2/24` on its `veth0`, the
//!   router `10.201.i.1/24` on its `p<i>`, and the party's default route goes through it. Every
//!   test has namespaces of its own (named after the test process and a counter), so these
//!   addresses never meet another test's; nothing is added to the machine's own namespace.
//! - A party's services listen on the namespace's own `127.0.0.1`, the gateway's federation
//!   listener on `10.201.i.2`.
//! - With [`Routing::Shaped`], every gateway's route to another party points at a proxy of
//!   this process listening in the router namespace, which forwards to that party's federation
//!   listener and delays what a degraded party sends ([`Network::degrade`]). The kernel has no
//!   `netem` here, so the delay is done in user space; it is one way, like netem on the party's
//!   interface: bytes the party sends wait, bytes it receives do not.
//! - Loss is nftables in the router namespace: a share of the packets that come in from the
//!   party's veth is dropped (again what the party sends).
//! - Cuts ([`Network::cut_one_way`], [`Network::cut`]) are nftables conntrack rules in the
//!   router's forward chain, so use them with [`Routing::Direct`] (no proxy in the path). The
//!   router tracks connections from the start (a `ct` rule is loaded with the table): the
//!   kernel only tracks in a namespace once a rule needs it, and a connection picked up
//!   mid-stream may take the answering side for its originator, which a one-way cut would
//!   then miss.
//!
//! The test process reaches a party's services by creating its sockets inside that party's
//! namespace ([`Network::channel`]): a socket belongs to the namespace of the thread that makes
//! it, so a short-lived thread enters the namespace (`setns`), connects, and hands the stream to
//! tokio.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// How gateways reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Straight through the router (the kernel forwards): for cuts.
    Direct,
    /// Through a delaying proxy in the router namespace: for [`Network::degrade`].
    Shaped,
}

/// How a degraded party's link behaves (what it sends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Each chunk waits `delay ± jitter` (uniform), order kept.
    pub delay: Duration,
    pub jitter: Duration,
    /// Packets lost, per cent.
    pub loss_percent: u32,
}

/// The namespaces of one test; dropped, they are deleted (and their veths with them).
pub struct Network {
    /// The party ids in order (party `i` has `10.201.i.0/24`).
    parties: Vec<String>,
    /// Party id → namespace name.
    namespaces: BTreeMap<String, String>,
    router: String,
    routing: Routing,
    /// Party id → its degradation, read by the proxies for every chunk.
    shaping: Arc<Mutex<BTreeMap<String, Link>>>,
    /// The proxies' tasks, ended on drop.
    proxies: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("router", &self.router)
            .field("namespaces", &self.namespaces)
            .field("routing", &self.routing)
            .finish_non_exhaustive()
    }
}

/// The prefix of every namespace this harness makes.
const PREFIX: &str = "fedflow-t";

/// The nftables table in the router namespace.
const TABLE: &str = "fedflow";

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Runs `nft` with `script` on its stdin inside namespace `ns`.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("run nft: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(|e| format!("write to nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {script:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes namespaces of this harness left behind by test processes that no longer run
/// (killed before their drop).
fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Why this machine cannot run the network tests, if it cannot.
fn unavailable() -> Option<String> {
    // Only root may make namespaces.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some(format!(
            "not root (uid {uid}): network namespaces need root"
        ));
    }
    for (tool, args) in [("ip", ["-V"]), ("nft", ["--version"])] {
        if let Err(e) = run(tool, &args) {
            return Some(format!("{e} (apt-get install iproute2 nftables)"));
        }
    }
    None
}

impl Network {
    /// Makes the router and one namespace per party, or says why it cannot (not root, no
    /// `ip` or `nft`): the caller skips then, unless `FEDFLOW_REQUIRE_TOOLS` is set.
    pub fn new(parties: &[&str], routing: Routing) -> Result<Arc<Network>, String> {
        if let Some(reason) = unavailable() {
            return Err(reason);
        }
        sweep_stale();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}-{n}", std::process::id());
        let network = Network {
            parties: parties.iter().map(|p| (*p).to_owned()).collect(),
            namespaces: parties
                .iter()
                .map(|p| ((*p).to_owned(), format!("{base}-{p}")))
                .collect(),
            router: format!("{base}-router"),
            routing,
            shaping: Arc::default(),
            proxies: Mutex::default(),
        };
        // A failure part-way leaves only what `drop` deletes.
        let result = (|| {
            ip(&["netns", "add", &network.router])?;
            ip(&["-n", &network.router, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &network.router,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ],
            )?;
            for (i, party) in network.parties.iter().enumerate() {
                let ns: &str = &network.namespaces[party];
                ip(&["netns", "add", ns])?;
                let router_end = format!("p{i}");
                ip(&[
                    "link",
                    "add",
                    "veth0",
                    "netns",
                    ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &router_end,
                    "netns",
                    &network.router,
                ])?;
                let (mine, gateway) = (format!("10.201.{i}.2/24"), format!("10.201.{i}.1"));
                ip(&["-n", ns, "addr", "add", &mine, "dev", "veth0"])?;
                ip(&[
                    "-n",
                    &network.router,
                    "addr",
                    "add",
                    &format!("{gateway}/24"),
                    "dev",
                    &router_end,
                ])?;
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
                ip(&["-n", ns, "link", "set", "veth0", "up"])?;
                ip(&["-n", &network.router, "link", "set", &router_end, "up"])?;
                ip(&["-n", ns, "route", "add", "default", "via", &gateway])?;
            }
            nft(
                &network.router,
                &format!(
                    "table inet {TABLE} {{\n\
                     chain track {{ type filter hook prerouting priority -300; ct state new counter; }}\n\
                     chain cuts {{ type filter hook forward priority 0; policy accept; }}\n\
                     chain loss {{ type filter hook prerouting priority 0; policy accept; }}\n\
                     }}\n"
                ),
            )
        })();
        result.map(|()| Arc::new(network))
    }

    fn index(&self, party: &str) -> usize {
        self.parties
            .iter()
            .position(|p| p == party)
            .unwrap_or_else(|| panic!("no party {party} in this network"))
    }

    /// The namespace party `party` runs in.
    pub fn namespace(&self, party: &str) -> &str {
        &self.namespaces[party]
    }

    /// The address of `party` on its link (`10.201.i.2`).
    pub fn address(&self, party: &str) -> String {
        format!("10.201.{}.2", self.index(party))
    }

    /// The router's address on `party`'s link.
    fn router_address(&self, party: &str) -> String {
        format!("10.201.{}.1", self.index(party))
    }

    /// The command that runs `program` inside `party`'s namespace (`ip netns exec` execs
    /// the program, so the child's pid is the program's).
    pub fn command(&self, party: &str, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace(party)])
            .arg(program);
        command
    }

    /// The address party `from`'s gateway dials to reach party `to`, whose federation
    /// listener is `upstream`: `upstream` itself, or (shaped) a proxy to it made now.
    pub fn route(&self, from: &str, to: &str, upstream: &str) -> String {
        if self.routing == Routing::Direct || from == to {
            return upstream.to_owned();
        }
        let listener = listen_in(&self.router, &format!("{}:0", self.router_address(from)))
            .unwrap_or_else(|e| panic!("a proxy for {from} -> {to}: {e}"));
        let addr = listener.local_addr().expect("local address").to_string();
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        let proxy = Proxy {
            router: self.router.clone(),
            upstream: upstream.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            shaping: self.shaping.clone(),
        };
        let task = tokio::spawn(proxy.serve(listener));
        self.proxies.lock().expect("not poisoned").push(task);
        addr
    }

    /// Degrades what `party` sends: delayed (shaped routing only) and lost.
    pub fn degrade(&self, party: &str, link: Link) -> Result<(), String> {
        assert!(
            link.delay.is_zero() || self.routing == Routing::Shaped,
            "a delay needs Routing::Shaped"
        );
        self.restore(party)?;
        if link.loss_percent > 0 {
            nft(
                &self.router,
                &format!(
                    "add rule inet {TABLE} loss iifname \"p{}\" numgen random mod 100 < {} drop\n",
                    self.index(party),
                    link.loss_percent
                ),
            )?;
        }
        self.shaping
            .lock()
            .expect("not poisoned")
            .insert(party.to_owned(), link);
        Ok(())
    }

    /// Undoes [`Network::degrade`] (every party's loss rules go; only `party`'s delay).
    pub fn restore(&self, party: &str) -> Result<(), String> {
        self.shaping.lock().expect("not poisoned").remove(party);
        nft(&self.router, &format!("flush chain inet {TABLE} loss\n"))
    }

    /// Party `from` can no longer reach party `to`, while `to` still reaches `from`: every
    /// packet of a connection `from` opened towards `to` is dropped (including connections
    /// open now), `to`'s own connections to `from` are untouched.
    pub fn cut_one_way(&self, from: &str, to: &str) -> Result<(), String> {
        nft(
            &self.router,
            &format!(
                "add rule inet {TABLE} cuts ct original ip saddr {} ct original ip daddr {} drop\n",
                self.address(from),
                self.address(to)
            ),
        )
    }

    /// Neither party reaches the other.
    pub fn cut(&self, a: &str, b: &str) -> Result<(), String> {
        self.cut_one_way(a, b)?;
        self.cut_one_way(b, a)
    }

    /// Every cut is lifted.
    pub fn heal(&self) -> Result<(), String> {
        nft(&self.router, &format!("flush chain inet {TABLE} cuts\n"))
    }

    /// A lazily connected channel to `addr` inside `party`'s namespace.
    pub fn channel(&self, party: &str, addr: &str) -> Channel {
        let ns = self.namespace(party).to_owned();
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid address")
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .connect_with_connector_lazy(tower::service_fn(move |uri: http::Uri| {
                let ns = ns.clone();
                async move {
                    let authority = uri
                        .authority()
                        .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?
                        .to_string();
                    connect_in(&ns, &authority).await.map(TokioIo::new)
                }
            }))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for task in self.proxies.lock().expect("not poisoned").drain(..) {
            task.abort();
        }
        for ns in self.namespaces.values().chain([&self.router]) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` on a new thread that has entered namespace `ns`.
fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| std::io::Error::other(format!("setns {path}: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}

/// A TCP connection to `addr` made inside namespace `ns`.
pub async fn connect_in(ns: &str, addr: &str) -> std::io::Result<TcpStream> {
    let ns = ns.to_owned();
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("address {addr:?}: {e}")))?;
    let stream = tokio::task::spawn_blocking(move || {
        in_namespace(&ns, move || {
            let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            stream.set_nonblocking(true)?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    })
    .await
    .map_err(std::io::Error::other)??;
    TcpStream::from_std(stream)
}

/// A listener on `addr` made inside namespace `ns` (non-blocking, for tokio).
fn listen_in(ns: &str, addr: &str) -> std::io::Result<std::net::TcpListener> {
    let addr = addr.to_owned();
    in_namespace(ns, move || {
        let listener = std::net::TcpListener::bind(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
}

/// A proxy from party `from`'s gateway to party `to`'s federation listener (`upstream`).
struct Proxy {
    router: String,
    upstream: String,
    from: String,
    to: String,
    shaping: Arc<Mutex<BTreeMap<String, Link>>>,
}

impl Proxy {
    async fn serve(self, listener: tokio::net::TcpListener) {
        let proxy = Arc::new(self);
        loop {
            let Ok((client, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let Ok(upstream) = connect_in(&proxy.router, &proxy.upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (up_read, up_write) = upstream.into_split();
                // What `from` sends waits by `from`'s link, what `to` answers by `to`'s.
                let out = pipe(
                    client_read,
                    up_write,
                    proxy.shaping.clone(),
                    proxy.from.clone(),
                );
                let back = pipe(
                    up_read,
                    client_write,
                    proxy.shaping.clone(),
                    proxy.to.clone(),
                );
                let _ = tokio::join!(out, back);
            });
        }
    }
}

/// A small generator for the delays (xorshift64*).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Jitter(seed)
    }

    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn sample(&mut self, link: &Link) -> Duration {
        let spread = link.jitter.as_secs_f64() * (2.0 * self.next() - 1.0);
        Duration::from_secs_f64((link.delay.as_secs_f64() + spread).max(0.0))
    }
}

/// Copies `from` to `to`, each chunk delivered at max(the previous delivery, its arrival +
/// a delay drawn for `sender`'s link): late but in order, as one TCP stream must be.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shaping: Arc<Mutex<BTreeMap<String, Link>>>,
    sender: String,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let reader = async move {
        let mut jitter = Jitter::new();
        let mut last = tokio::time::Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let link = shaping.lock().expect("not poisoned").get(&sender).copied();
            let now = tokio::time::Instant::now();
            let at = match link {
                Some(link) => (now + jitter.sample(&link)).max(last),
                None => now.max(last),
            };
            last = at;
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Whether the network tests can run here; prints why not and returns None to skip, or panics
/// when `FEDFLOW_REQUIRE_TOOLS` is set.
pub fn network_or_skip(parties: &[&str], routing: Routing) -> Option<Arc<Network>> {
    match Network::new(parties, routing) {
        Ok(network) => Some(network),
        Err(reason) => {
            assert!(
                std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
                "FEDFLOW_REQUIRE_TOOLS is set but the network tests cannot run: {reason}"
            );
            eprintln!("skipped: {reason}");
            None
        }
    }
}
