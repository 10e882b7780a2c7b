//! The `/etc/hosts` and `/etc/resolv.conf` a build container sees, generated per run
//! and bind-mounted read-only, so nothing in the image is edited (BuildKit's
//! `executor/oci/hosts.go` and `resolvconf.go`).

use std::net::IpAddr;

use super::request::{HostIp, NetMode};

/// Used when filtering leaves no nameserver, as Docker's legacy network does.
const FALLBACK_NAMESERVERS: [&str; 4] = [
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
];

/// `localhost` and the container's hostname on loopback, then the extra hosts.
pub fn hosts_file(hostname: &str, extra: &[HostIp]) -> String {
    let mut s =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for h in extra {
        s.push_str(&format!("{}\t{}\n", h.ip, h.host));
    }
    s
}

/// Derives the container's resolv.conf from the host's. Outside the host network a
/// loopback nameserver (a local resolver such as systemd-resolved's `127.0.0.53`) is
/// unreachable, so those lines are dropped; when no nameserver is left, public
/// fallbacks are added. `search` and `options` lines are kept.
pub fn resolv_conf(host: &str, net: NetMode) -> String {
    let mut out = String::new();
    let mut nameservers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            // A zone suffix (fe80::1%eth0) is not part of the address.
            let ip = addr.split('%').next().unwrap_or("").parse::<IpAddr>();
            let keep = match ip {
                Ok(ip) => net == NetMode::Host || !ip.is_loopback(),
                Err(_) => false,
            };
            if keep {
                nameservers += 1;
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if nameservers == 0 {
        for ns in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {ns}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_hostname_and_extras() {
        let h = hosts_file(
            "box",
            &[HostIp {
                host: "reg".into(),
                ip: "10.0.0.2".into(),
            }],
        );
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\treg\n"
        );
    }

    #[test]
    fn loopback_nameservers_are_filtered_outside_host_network() {
        let host = "# c\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.1.1.1\nsearch example.org\noptions edns0\n";
        let got = resolv_conf(host, NetMode::None);
        assert_eq!(
            got,
            "# c\nnameserver 10.1.1.1\nsearch example.org\noptions edns0\n"
        );
        let host_net = resolv_conf(host, NetMode::Host);
        assert!(host_net.contains("127.0.0.53"));
    }

    #[test]
    fn fallbacks_when_nothing_is_left() {
        let got = resolv_conf("nameserver 127.0.0.1\n", NetMode::None);
        assert!(!got.contains("127.0.0.1"));
        assert!(got.contains("nameserver 8.8.8.8\n"));
        assert!(resolv_conf("", NetMode::Host).contains("8.8.4.4"));
    }
}
