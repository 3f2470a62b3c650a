//! The interfaces of a mobile core by transport and port, so that events, the
//! model and the console name a peer as an operator thinks of it ("PFCP (N4)
//! to 10.0.2.7:8805") rather than as a socket does ("udp 10.0.2.7:8805").
//!
//! One table for the sidecar, the console and the UI ([`TABLE`], which
//! serialises as JSON). A peer is named by its transport and port alone:
//! nfguard never reads payloads, so a peer on an interface's port is named
//! after the interface whatever it speaks. That is exact for the ports
//! 3GPP assigns (PFCP 8805, GTP 2123 and 2152, NGAP 38412, Diameter 3868) and
//! a good guess for the Service Based Interface, whose HTTP/2 servers listen
//! where each deployment puts them: 7777 (Open5GS), 8000 (free5GC), 80, 443
//! and 8080 (OAI, and any web server). The last three are named "HTTP
//! (SBI)", since a plain web peer there is as likely.

use serde::Serialize;

/// One interface: the transport and port it is recognised by, its protocol,
/// and the 3GPP reference points it serves (none for a protocol that is its
/// own name, such as Osmocom's GSUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// `tcp`, `udp` or `sctp`, as the model and events name transports.
    pub transport: &'static str,
    pub port: u16,
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<&'static str>,
}

impl Interface {
    /// How events and the model name it: `PFCP (N4)`, or `GSUP`.
    pub fn label(&self) -> String {
        match self.interface {
            Some(i) => format!("{} ({i})", self.protocol),
            None => self.protocol.to_string(),
        }
    }
}

const fn at(
    transport: &'static str,
    port: u16,
    protocol: &'static str,
    interface: Option<&'static str>,
) -> Interface {
    Interface {
        transport,
        port,
        protocol,
        interface,
    }
}

/// The table, ordered by transport then port. Ports are IANA's and 3GPP's
/// (TS 29.244 for PFCP, 29.281 and 29.060 for GTP, 38.412 for NGAP, 36.412
/// for S1AP, RFC 6733 for Diameter) and Osmocom's (GSUP 4222, NS 23000).
pub const TABLE: &[Interface] = &[
    // SCTP: the RAN-facing application protocols, and signalling transport.
    at("sctp", 2905, "M3UA", Some("SIGTRAN")),
    at("sctp", 3868, "Diameter", Some("S6a/Gx/Rx")),
    at("sctp", 14001, "SUA", Some("SIGTRAN")),
    at("sctp", 29118, "SGsAP", Some("SGs")),
    at("sctp", 36412, "S1AP", Some("S1-MME")),
    at("sctp", 36422, "X2AP", Some("X2")),
    at("sctp", 38412, "NGAP", Some("N2")),
    at("sctp", 38422, "XnAP", Some("Xn")),
    at("sctp", 38462, "E1AP", Some("E1")),
    at("sctp", 38472, "F1AP", Some("F1")),
    // TCP: the Service Based Interface, Diameter, Osmocom's links.
    at("tcp", 53, "DNS", None),
    at("tcp", 80, "HTTP", Some("SBI")),
    at("tcp", 443, "HTTP", Some("SBI")),
    at("tcp", 2905, "M3UA", Some("SIGTRAN")),
    at("tcp", 3002, "IPA", Some("Abis OML")),
    at("tcp", 3003, "IPA", Some("Abis RSL")),
    at("tcp", 3868, "Diameter", Some("S6a/Gx/Rx")),
    at("tcp", 4222, "GSUP", None),
    at("tcp", 7777, "HTTP/2", Some("SBI")),
    at("tcp", 8000, "HTTP/2", Some("SBI")),
    at("tcp", 8080, "HTTP", Some("SBI")),
    // UDP: the user plane, its control, and GTP's control plane.
    at("udp", 53, "DNS", None),
    at("udp", 1812, "RADIUS", None),
    at("udp", 1813, "RADIUS accounting", None),
    at("udp", 2123, "GTP-C", Some("Gn/S5/S8/S11")),
    at("udp", 2152, "GTP-U", Some("N3/N9")),
    at("udp", 4729, "GSMTAP", None),
    at("udp", 8805, "PFCP", Some("N4")),
    at("udp", 23000, "NS", Some("Gb")),
];

/// The interface of a peer or served port of `transport` (`tcp`, `udp`,
/// `sctp`) on `port`, if the table names one.
pub fn lookup(transport: &str, port: u16) -> Option<&'static Interface> {
    TABLE
        .iter()
        .find(|i| i.port == port && i.transport == transport)
}

/// How events and the model name `transport` traffic to `host:port`:
/// `PFCP (N4) to 10.0.2.7:8805`, or `udp to 10.0.2.7:9999` for a port the
/// table does not name. `host_port` is already joined (brackets for IPv6).
pub fn describe_peer(transport: &str, port: u16, host_port: &str) -> String {
    match lookup(transport, port) {
        Some(i) => format!("{} to {host_port}", i.label()),
        None => format!("{transport} to {host_port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_interfaces_are_named_by_transport_and_port() {
        let label = |t, p| lookup(t, p).map(|i| i.label());
        assert_eq!(label("udp", 8805).as_deref(), Some("PFCP (N4)"));
        assert_eq!(label("udp", 2152).as_deref(), Some("GTP-U (N3/N9)"));
        assert_eq!(label("udp", 2123).as_deref(), Some("GTP-C (Gn/S5/S8/S11)"));
        assert_eq!(label("sctp", 38412).as_deref(), Some("NGAP (N2)"));
        assert_eq!(label("tcp", 3868).as_deref(), Some("Diameter (S6a/Gx/Rx)"));
        assert_eq!(label("sctp", 3868).as_deref(), Some("Diameter (S6a/Gx/Rx)"));
        assert_eq!(label("tcp", 4222).as_deref(), Some("GSUP"));
        assert_eq!(label("tcp", 7777).as_deref(), Some("HTTP/2 (SBI)"));
        // The transport matters: PFCP is UDP, a TCP peer on 8805 is not PFCP.
        assert_eq!(label("tcp", 8805), None);
        assert_eq!(label("udp", 38412), None);
        assert_eq!(
            describe_peer("udp", 8805, "10.0.2.7:8805"),
            "PFCP (N4) to 10.0.2.7:8805"
        );
        assert_eq!(
            describe_peer("udp", 9999, "10.0.2.7:9999"),
            "udp to 10.0.2.7:9999"
        );
    }

    #[test]
    fn the_table_is_ordered_and_names_each_port_of_a_transport_once() {
        for w in TABLE.windows(2) {
            assert!(
                (w[0].transport, w[0].port) < (w[1].transport, w[1].port),
                "{:?} before {:?}",
                w[0],
                w[1]
            );
        }
    }
}
