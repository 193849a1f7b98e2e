//! One network namespace per broker, joined by veth pairs to a bridge in the root namespace,
//! where the test process (and its HTTPS clients) sits. Faults are made inside the namespaces
//! with `ip route` and `tc`: a blackhole route to a peer's address drops every packet this
//! broker sends to it (a one-way cut; both ways is a symmetric cut), and a token bucket (`tbf`)
//! on both ends of a broker's veth makes its link slow. The root namespace's address is never
//! cut, so every broker stays reachable by the clients.
//!
//! A namespace may get its own `/etc/hosts` (`write_hosts`): `ip netns exec` bind-mounts the
//! files of `/etc/netns/<namespace>/` over those of `/etc/` for the process it starts, which
//! is how a broker in a namespace resolves names no other namespace knows. A namespace can move
//! to a new address on the bridge (`move_to`), as a rescheduled pod does.
//!
//! Everything is named after the test process id and a per-process counter, and removed on
//! drop, also when the test panics; leftovers of a test process that was killed (whose pid no
//! longer runs) are removed when the next network is created.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::common::cluster::Placement;

/// Prefix of every namespace, bridge and veth the harness creates.
const PREFIX: &str = "pf";
/// Networks one test process may create (each takes one /24 of 10.201.0.0/16).
const NETWORKS_PER_PROCESS_MAX: u8 = 8;
/// How long a probe datagram may take on the bridge before it counts as dropped.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// The host part of the bridge's (the test process's) address.
const ROOT_HOST: u8 = 254;
/// Where `ip netns exec` finds the files it mounts over `/etc/` in a namespace.
const NETNS_ETC: &str = "/etc/netns";

pub struct Network {
    /// `pf<pid>_<k>`: the start of every name this network owns.
    tag: String,
    /// The third octet of 10.201.X.0/24.
    subnet: u8,
    /// Broker ids with a namespace, in order.
    brokers: Vec<u64>,
    /// The host part of each broker's address in 10.201.X.0/24 (its id until it moves).
    hosts: BTreeMap<u64, u8>,
    /// Brokers whose namespace has its own `/etc/netns/<namespace>/hosts`.
    hosts_files: BTreeSet<u64>,
    /// One-way cuts in force: (from, to) means `from` cannot send to `to`.
    cuts: BTreeSet<(u64, u64)>,
    slow: BTreeSet<u64>,
}

impl Network {
    /// A bridge and one namespace per broker id (ids 1..=count), broker `id` at 10.201.X.id.
    pub fn create(count: u64) -> Network {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let counter = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            counter < NETWORKS_PER_PROCESS_MAX,
            "at most {NETWORKS_PER_PROCESS_MAX} networks per test process"
        );
        remove_leftovers();
        let pid = std::process::id();
        let subnet = free_subnet(pid, counter);
        let mut network = Network {
            tag: format!("{PREFIX}{pid}_{counter}"),
            subnet,
            brokers: Vec::new(),
            hosts: BTreeMap::new(),
            hosts_files: BTreeSet::new(),
            cuts: BTreeSet::new(),
            slow: BTreeSet::new(),
        };
        let bridge = network.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let root = format!("{}/24", network.root_address());
        ip(&["addr", "add", &root, "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for id in 1..=count {
            network.add_namespace(id);
        }
        network
    }

    /// One more namespace, for broker `id`, at 10.201.X.id.
    pub fn add(&mut self, id: u64) {
        assert!(!self.brokers.contains(&id), "broker {id} has a namespace");
        self.add_namespace(id);
    }

    fn add_namespace(&mut self, id: u64) {
        let (namespace, outside, inside) = (self.namespace(id), self.outside(id), self.inside(id));
        let host = u8::try_from(id).expect("broker id fits the host part");
        self.claim_host(id, host);
        ip(&["netns", "add", &namespace]);
        self.brokers.push(id);
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &namespace,
        ]);
        ip(&["link", "set", &outside, "master", &self.bridge(), "up"]);
        let address = format!("{}/24", self.address(id));
        ip(&["-n", &namespace, "addr", "add", &address, "dev", &inside]);
        ip(&["-n", &namespace, "link", "set", &inside, "up"]);
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
    }

    fn claim_host(&mut self, id: u64, host: u8) {
        assert!(
            host > 0 && host < ROOT_HOST,
            "host part {host} of broker {id}"
        );
        assert!(
            !self
                .hosts
                .iter()
                .any(|(other, used)| *other != id && *used == host),
            "10.201.{}.{host} is taken",
            self.subnet
        );
        self.hosts.insert(id, host);
    }

    /// Broker `id`'s address.
    pub fn address(&self, id: u64) -> IpAddr {
        let host = *self.hosts.get(&id).expect("broker has a namespace");
        IpAddr::V4(Ipv4Addr::new(10, 201, self.subnet, host))
    }

    /// The address broker `id` would have with host part `host`, for certificates made ahead.
    pub fn address_at(&self, host: u8) -> IpAddr {
        assert!(host > 0 && host < ROOT_HOST, "host part {host}");
        IpAddr::V4(Ipv4Addr::new(10, 201, self.subnet, host))
    }

    /// Gives broker `id`'s namespace the address with host part `host` instead of its own, as
    /// a pod rescheduled onto another node comes back with another IP. Only between runs of
    /// the broker, and with no cut involving it in force.
    pub fn move_to(&mut self, id: u64, host: u8) {
        assert!(
            !self.cuts.iter().any(|(from, to)| *from == id || *to == id),
            "broker {id} has cuts in force"
        );
        let (namespace, inside) = (self.namespace(id), self.inside(id));
        let old = format!("{}/24", self.address(id));
        self.claim_host(id, host);
        let new = format!("{}/24", self.address(id));
        // Old first: deleting a primary address also deletes the secondaries of its subnet.
        ip(&["-n", &namespace, "addr", "del", &old, "dev", &inside]);
        ip(&["-n", &namespace, "addr", "add", &new, "dev", &inside]);
    }

    /// Sets what processes started in broker `id`'s namespace read as `/etc/hosts`. The file
    /// is rewritten in place: a running process's mount refers to the file itself (its inode),
    /// so it sees the new text at its next lookup.
    pub fn write_hosts(&mut self, id: u64, text: &str) {
        assert!(self.brokers.contains(&id), "broker {id} has no namespace");
        let dir = Path::new(NETNS_ETC).join(self.namespace(id));
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        let path = dir.join("hosts");
        // Not write-then-rename: a new inode would leave running processes on the old text.
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        self.hosts_files.insert(id);
    }

    /// The command line that starts a program in broker `id`'s namespace, in a UTS namespace
    /// of its own whose host name is `hostname` (a pod's host name is the pod's name). The
    /// program and its arguments follow; the started process has the launcher's pid.
    pub fn launcher_named(&self, id: u64, hostname: &str) -> Vec<String> {
        [
            "ip",
            "netns",
            "exec",
            &self.namespace(id),
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
            hostname,
        ]
        .map(String::from)
        .to_vec()
    }

    /// Runs `program` inside broker `id`'s namespace as `ip netns exec` starts it (its hosts
    /// file mounted) and returns its standard output, or `None` when it failed.
    pub fn run_inside(&self, id: u64, program: &str, arguments: &[&str]) -> Option<String> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.namespace(id), program])
            .args(arguments)
            .output()
            .unwrap_or_else(|error| panic!("ip netns exec: {error}"));
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn root_address(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 201, self.subnet, ROOT_HOST))
    }

    /// Where broker `id` runs: its address, started inside its namespace, with `env` set.
    pub fn placement(&self, id: u64, env: &[(&str, &str)]) -> Placement {
        let mut launcher = vec![
            "ip".to_string(),
            "netns".to_string(),
            "exec".to_string(),
            self.namespace(id),
        ];
        if !env.is_empty() {
            launcher.push("env".into());
            launcher.extend(env.iter().map(|(key, value)| format!("{key}={value}")));
        }
        Placement {
            address: self.address(id),
            launcher,
        }
    }

    /// From now on every packet `from` sends to `to` is dropped (`to` may still send to `from`).
    pub fn cut(&mut self, from: u64, to: u64) {
        assert_ne!(from, to);
        if self.cuts.insert((from, to)) {
            let target = format!("{}/32", self.address(to));
            ip(&[
                "-n",
                &self.namespace(from),
                "route",
                "add",
                "blackhole",
                &target,
            ]);
        }
    }

    /// Undoes `cut(from, to)`.
    pub fn heal(&mut self, from: u64, to: u64) {
        if self.cuts.remove(&(from, to)) {
            let target = format!("{}/32", self.address(to));
            ip(&[
                "-n",
                &self.namespace(from),
                "route",
                "del",
                "blackhole",
                &target,
            ]);
        }
    }

    /// Cuts `a` and `b` from each other in both directions.
    pub fn cut_both(&mut self, a: u64, b: u64) {
        self.cut(a, b);
        self.cut(b, a);
    }

    pub fn heal_both(&mut self, a: u64, b: u64) {
        self.heal(a, b);
        self.heal(b, a);
    }

    /// Cuts `id` from every other broker in both directions; the clients still reach it.
    pub fn isolate(&mut self, id: u64) {
        for other in self.brokers.clone() {
            if other != id {
                self.cut_both(id, other);
            }
        }
    }

    /// Makes broker `id`'s link slow in both directions: a token bucket of `rate` (a `tc`
    /// rate such as "256kbit") queues what passes it, and drops what waits longer than 500 ms.
    pub fn slow_down(&mut self, id: u64, rate: &str) {
        assert!(self.slow.insert(id), "broker {id} is slow already");
        for (namespace, device) in self.link_ends(id) {
            let mut arguments = namespace_arguments(&namespace);
            arguments.extend(
                [
                    "qdisc", "add", "dev", &device, "root", "tbf", "rate", rate, "burst", "4kb",
                    "latency", "500ms",
                ]
                .map(String::from),
            );
            run("tc", &arguments);
        }
    }

    pub fn speed_up(&mut self, id: u64) {
        if self.slow.remove(&id) {
            for (namespace, device) in self.link_ends(id) {
                let mut arguments = namespace_arguments(&namespace);
                arguments.extend(["qdisc", "del", "dev", &device, "root"].map(String::from));
                run("tc", &arguments);
            }
        }
    }

    /// Removes every cut and every slow link.
    pub fn heal_all(&mut self) {
        for (from, to) in self.cuts.clone() {
            self.heal(from, to);
        }
        for id in self.slow.clone() {
            self.speed_up(id);
        }
    }

    /// Whether a UDP datagram sent from broker `from`'s namespace (`None`: the root namespace,
    /// where the clients are) reaches broker `to`'s: how the tests show a cut is real.
    pub fn delivers(&self, from: Option<u64>, to: u64) -> bool {
        let (port_sender, port) = std::sync::mpsc::channel();
        let receiver_namespace = self.namespace(to);
        let address = self.address(to);
        let receiver = std::thread::spawn(move || {
            enter(&receiver_namespace);
            let socket = std::net::UdpSocket::bind((address, 0)).expect("bind probe receiver");
            socket
                .set_read_timeout(Some(PROBE_WAIT))
                .expect("probe timeout");
            let local = socket.local_addr().expect("probe address");
            port_sender.send(local).expect("probe port");
            let mut buffer = [0u8; 16];
            matches!(socket.recv_from(&mut buffer), Ok((5, _)) if &buffer[..5] == b"probe")
        });
        let target = port.recv().expect("probe receiver started");
        let sender_namespace = from.map(|id| self.namespace(id));
        std::thread::spawn(move || {
            if let Some(namespace) = sender_namespace {
                enter(&namespace);
            }
            let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).expect("bind probe sender");
            for _ in 0..3 {
                // A blackhole route fails the send itself; the receiver decides.
                let _ = socket.send_to(b"probe", target);
            }
        })
        .join()
        .expect("probe sender");
        receiver.join().expect("probe receiver")
    }

    /// The names of the namespaces, for checks of the clean-up.
    pub fn namespaces(&self) -> Vec<String> {
        self.brokers.iter().map(|id| self.namespace(*id)).collect()
    }

    /// The cuts in force, for failure messages.
    pub fn cuts(&self) -> Vec<(u64, u64)> {
        self.cuts.iter().copied().collect()
    }

    /// (namespace, device) of both ends of broker `id`'s veth; "" is the root namespace.
    fn link_ends(&self, id: u64) -> [(String, String); 2] {
        [
            (self.namespace(id), self.inside(id)),
            (String::new(), self.outside(id)),
        ]
    }

    fn namespace(&self, id: u64) -> String {
        format!("{}n{id}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    /// The veth end on the bridge (at most 15 bytes: `pf` + 7-digit pid + `_k` + `v` + id).
    fn outside(&self, id: u64) -> String {
        format!("{}v{id}", self.tag)
    }

    /// The veth end inside the namespace (names are per namespace, so this one is short).
    fn inside(&self, id: u64) -> String {
        format!("eth{id}")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for id in self.brokers.clone() {
            let namespace = self.namespace(id);
            kill_inside(&namespace);
            // Deleting the namespace removes the veth pair with it.
            let _ = Command::new("ip")
                .args(["netns", "del", &namespace])
                .status();
            if self.hosts_files.contains(&id) {
                remove_etc(&namespace);
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .status();
    }
}

/// Moves the calling thread (only it) into the network namespace `name`.
fn enter(name: &str) {
    let path = format!("/run/netns/{name}");
    let file = std::fs::File::open(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    // SAFETY: setns(2) on a namespace file this harness created; it changes only this thread.
    let result = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    assert_eq!(
        result,
        0,
        "setns {name}: {}",
        std::io::Error::last_os_error()
    );
}

fn namespace_arguments(namespace: &str) -> Vec<String> {
    if namespace.is_empty() {
        Vec::new()
    } else {
        ["-n", namespace].map(String::from).to_vec()
    }
}

fn ip(arguments: &[&str]) {
    let arguments: Vec<String> = arguments.iter().map(|a| a.to_string()).collect();
    run("ip", &arguments);
}

/// Runs a command that must succeed; fails the test with its output otherwise.
fn run(program: &str, arguments: &[String]) {
    let output = Command::new(program)
        .args(arguments)
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {}: {}{}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn output(program: &str, arguments: &[&str]) -> String {
    Command::new(program)
        .args(arguments)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// SIGKILL for every process left in `namespace` (only the harness puts processes there).
fn kill_inside(namespace: &str) {
    for pid in output("ip", &["netns", "pids", namespace]).split_whitespace() {
        if let Ok(pid) = pid.parse::<libc::pid_t>() {
            // SAFETY: kill(2) on a broker this harness started in its own namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The test process id a harness name belongs to (`pf<pid>_...`).
fn owner(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('_').next()?.parse().ok()
}

fn running(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes `/etc/netns/<namespace>`, and `/etc/netns` once no namespace has files there.
fn remove_etc(namespace: &str) {
    let _ = std::fs::remove_dir_all(Path::new(NETNS_ETC).join(namespace));
    // Fails while another namespace (of this or another process) still has its files there.
    let _ = std::fs::remove_dir(NETNS_ETC);
}

/// Removes the namespaces and bridges of test processes that no longer run.
fn remove_leftovers() {
    for line in output("ip", &["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if owner(name).is_some_and(|pid| !running(pid)) {
            kill_inside(name);
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    for entry in std::fs::read_dir(NETNS_ETC).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner(&name).is_some_and(|pid| !running(pid)) {
            remove_etc(&name);
        }
    }
    for line in output("ip", &["-o", "link", "show", "type", "bridge"]).lines() {
        let Some(name) = line.split(':').nth(1).map(str::trim) else {
            continue;
        };
        if owner(name).is_some_and(|pid| !running(pid)) {
            let _ = Command::new("ip").args(["link", "del", name]).status();
        }
    }
}

/// A /24 of 10.201.0.0/16 no interface of the root namespace uses, starting from one that
/// depends on the process id, so concurrent test binaries pick different ones.
fn free_subnet(pid: u32, counter: u8) -> u8 {
    let used = output("ip", &["-4", "-o", "addr", "show"]);
    let start = (pid % 31) * u32::from(NETWORKS_PER_PROCESS_MAX) + u32::from(counter);
    (0..250u32)
        .map(|step| ((start + step) % 250 + 1) as u8)
        .find(|subnet| !used.contains(&format!(" 10.201.{subnet}.")))
        .expect("a free /24 in 10.201.0.0/16")
}
