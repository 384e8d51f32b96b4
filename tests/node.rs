//! `[node] id`: which of several nodes took a message, in its `Received:`
//! field, the metrics and the configuration's checks.

use rackwave::config::Config;
use serde_json::json;

#[tokio::test]
async fn the_node_id_is_in_received_fields_and_metrics() {
    let ts = rackwave_testkit::start_with(|c| c.node.id = Some("mx-7".into())).await;
    let ws = ts.create_workspace("acme", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let mail =
        json!({"from": "a@example.test", "to": ["b@example.net"], "subject": "Hi", "text": "Hi"});
    let (s, v) = ts
        .call(&key, "POST", "/migosmtp/v1/messages", Some(mail))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["messages"][0]["id"].as_str().unwrap();
    let raw = reqwest::Client::new()
        .get(format!("{}/migosmtp/v1/messages/{id}/raw", ts.http))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains("(Rackwave node mx-7) with HTTPS"),
        "{}",
        &raw[..raw.len().min(400)]
    );
    let metrics = ts.metrics().await;
    assert!(
        metrics.contains("rackwave_node_info{id=\"mx-7\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_node_id_is_a_plain_name_and_defaults_to_the_host_name() {
    let path = std::path::Path::new("t.toml");
    for bad in ["", "two words", "a\\\"b", &"x".repeat(65)] {
        let err = Config::parse(&format!("[node]\nid = \"{bad}\"\n"), path)
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(err.to_string().contains("[node] id"), "{err}");
    }
    let c = Config::parse("[node]\nid = \"eu-1.mx_2\"\n", path).unwrap();
    assert_eq!(c.node.id(), "eu-1.mx_2");
    let unset = Config::parse("", path).unwrap().node.id();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert!(
        unset == host.trim() || unset == "node",
        "{unset:?} vs {host:?}"
    );
}
