//! The radar: the NF workloads as nodes, and an edge for each peer a
//! workload's model connects to, the peer resolved to the workload whose pod
//! reported that address (or shown as external), named by protocol and, where
//! the port tells it, by 5G interface.

use std::collections::{BTreeMap, BTreeSet};

use nfguard_sidecar::console_link::wire::Item;
use serde_json::{json, Value};

/// The 5G interface a well-known port carries.
pub fn interface(protocol: &str, port: u16) -> Option<&'static str> {
    Some(match (protocol, port) {
        ("udp", 8805) => "N4 (PFCP)",
        ("udp", 2152) => "N3/N9 (GTP-U)",
        ("udp", 2123) => "GTP-C",
        ("sctp", 38412) => "N2 (NGAP)",
        ("sctp", 36412) => "S1-MME (S1AP)",
        ("tcp", 3868) | ("sctp", 3868) => "Diameter",
        ("tcp", 80) | ("tcp", 443) | ("tcp", 7777) | ("tcp", 8080) | ("tcp", 29500..=29599) => {
            "SBI (HTTP/2)"
        }
        ("tcp", 4222) => "GSUP",
        _ => return None,
    })
}

/// Which workload a peer is: the one whose pods report its address; when
/// several do (processes of one host, pods sharing a node's network), the one
/// of them whose model serves the port; else none (drawn as external).
fn resolve(
    by_address: &BTreeMap<String, BTreeSet<String>>,
    serves: &BTreeSet<(String, String, u16)>,
    address: &str,
    protocol: &str,
    port: u16,
) -> Option<String> {
    let owners = by_address.get(address)?;
    let serving: Vec<&String> = owners
        .iter()
        .filter(|w| serves.contains(&((*w).clone(), protocol.to_string(), port)))
        .collect();
    match (serving.as_slice(), owners.len()) {
        ([one], _) => Some((*one).clone()),
        (_, 1) => owners.iter().next().cloned(),
        _ => None,
    }
}

/// Nodes and edges from the workload views (api.rs) and the learned connect
/// and listen items.
pub fn build(workloads: &[Value], learned: &[(String, Item)]) -> Value {
    let mut by_address: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for w in workloads {
        for p in w["pods"].as_array().into_iter().flatten() {
            for a in p["addresses"].as_array().into_iter().flatten() {
                if let (Some(a), Some(id)) = (a.as_str(), w["id"].as_str()) {
                    by_address
                        .entry(a.to_string())
                        .or_default()
                        .insert(id.to_string());
                }
            }
        }
    }
    let serves: BTreeSet<(String, String, u16)> = learned
        .iter()
        .filter_map(|(w, i)| match i {
            Item::Listen(l) => Some((w.clone(), l.protocol.clone(), l.port)),
            _ => None,
        })
        .collect();
    let nodes: Vec<Value> = workloads
        .iter()
        .map(|w| {
            json!({
                "id": w["id"], "namespace": w["namespace"], "kind": w["kind"], "name": w["name"],
                "state": w["state"], "open_incidents": w["open_incidents"],
                "modes": w["containers"].as_array().map(|c| c.iter().map(|c| c["mode"].clone()).collect::<Vec<_>>()),
                "addresses": w["pods"].as_array().map(|ps| ps.iter().flat_map(|p| p["addresses"].as_array().cloned().unwrap_or_default()).filter_map(|a| a.as_str().map(String::from)).collect::<BTreeSet<String>>()),
            })
        })
        .collect();
    let mut edges: BTreeSet<(String, String, String, String, u16)> = BTreeSet::new();
    for (from, item) in learned {
        let Item::Connect(c) = item else { continue };
        let loopback = c.address.starts_with("127.") || c.address == "::1";
        let to = resolve(&by_address, &serves, &c.address, &c.protocol, c.port).unwrap_or_default();
        if (loopback && to.is_empty()) || to == *from {
            continue; // inside the pod, or to itself: not an edge between workloads
        }
        edges.insert((
            from.clone(),
            to,
            c.address.clone(),
            c.protocol.clone(),
            c.port,
        ));
    }
    let edges: Vec<Value> = edges
        .into_iter()
        .map(|(from, to, address, protocol, port)| {
            json!({
                "from": from,
                "to": if to.is_empty() { Value::Null } else { Value::String(to.clone()) },
                "external": to.is_empty(),
                "address": address, "protocol": protocol, "port": port,
                "interface": interface(&protocol, port),
            })
        })
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfguard_sidecar::model::PeerEntry;

    #[test]
    fn peers_resolve_to_workloads_by_pod_address_and_ports_name_interfaces() {
        let ws = vec![
            json!({"id": "c:core:deployment:smf", "pods": [{"addresses": ["10.0.0.1"]}], "containers": []}),
            json!({"id": "c:core:deployment:upf", "pods": [{"addresses": ["10.0.0.2"]}], "containers": []}),
        ];
        let c = |a: &str, proto: &str, port| {
            Item::Connect(PeerEntry {
                exe: "/smf".into(),
                protocol: proto.into(),
                address: a.into(),
                port,
            })
        };
        let r = build(
            &ws,
            &[
                ("c:core:deployment:smf".into(), c("10.0.0.2", "udp", 8805)),
                ("c:core:deployment:smf".into(), c("192.0.2.9", "tcp", 443)),
                ("c:core:deployment:smf".into(), c("127.0.0.1", "tcp", 4258)),
            ],
        );
        let e = r["edges"].as_array().unwrap();
        assert_eq!(e.len(), 2, "{r}");
        let n4 = e.iter().find(|e| e["port"] == 8805).unwrap();
        assert_eq!(
            (n4["to"].as_str(), n4["interface"].as_str()),
            (Some("c:core:deployment:upf"), Some("N4 (PFCP)"))
        );
        let ext = e.iter().find(|e| e["port"] == 443).unwrap();
        assert_eq!(ext["external"], true);
    }

    #[test]
    fn workloads_on_one_address_are_told_apart_by_the_port_they_serve() {
        let host =
            |id: &str| json!({"id": id, "pods": [{"addresses": ["10.0.9.9"]}], "containers": []});
        let ws = vec![host("l:core:deployment:smf"), host("l:core:deployment:upf")];
        let connect = Item::Connect(PeerEntry {
            exe: "/smf".into(),
            protocol: "udp".into(),
            address: "10.0.9.9".into(),
            port: 8805,
        });
        let listen = Item::Listen(nfguard_sidecar::model::ListenEntry {
            exe: "/upf".into(),
            protocol: "udp".into(),
            port: 8805,
            address: None,
        });
        let r = build(
            &ws,
            &[
                ("l:core:deployment:smf".into(), connect.clone()),
                ("l:core:deployment:upf".into(), listen),
            ],
        );
        assert_eq!(r["edges"][0]["to"], "l:core:deployment:upf", "{r}");
        // Nobody serves the port: the peer is ambiguous, so external.
        let r = build(&ws, &[("l:core:deployment:smf".into(), connect)]);
        assert_eq!(r["edges"][0]["external"], true, "{r}");
    }
}
