//! Rewrite an image config for a flattened image, editing the raw JSON so that
//! every field ferry does not touch (Docker-only ones, unknown ones) survives,
//! in its original order.

use serde_json::{json, Map, Value};

use super::error::{FlattenError, Result};

/// `created_by` of the history entry ferry adds.
pub const HISTORY_CREATED_BY: &str = "ferry flatten";
/// `comment` of the history entry ferry adds.
pub const HISTORY_COMMENT: &str = "flattened by ferry";

/// Rewrite an image config (OCI or Docker) for the flattened image whose one
/// layer has the diff_id `new_diff_id` (`sha256:<64 hex>`):
///
/// - `rootfs.diff_ids` becomes `[new_diff_id]`;
/// - every existing `history` entry is kept and marked `"empty_layer": true`,
///   and one entry is appended: `{"created": T, "created_by": "ferry flatten",
///   "comment": "flattened by ferry"}` where T is the newest `created` of the
///   history (else the config's `created`, else now), so that flattening the
///   same image twice gives the same config;
/// - every other field stays exactly as it was.
pub fn flatten_config(raw_config_json: &[u8], new_diff_id: &str) -> Result<Vec<u8>> {
    let hex = new_diff_id.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(FlattenError::Config(format!("{new_diff_id:?} is not a diff_id (expected sha256:<64 lowercase hex digits>)")));
    }
    let mut config: Value =
        crate::image::parse_document(raw_config_json).map_err(|e| FlattenError::Config(format!("not valid JSON: {e}")))?;
    let obj = config.as_object_mut().ok_or_else(|| FlattenError::Config("not a JSON object".into()))?;

    let created = newest_created(obj).unwrap_or_else(|| humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());

    match obj.get_mut("rootfs") {
        Some(Value::Object(rootfs)) => {
            if !rootfs.contains_key("type") {
                rootfs.insert("type".into(), json!("layers"));
            }
            rootfs.insert("diff_ids".into(), json!([new_diff_id]));
        }
        None | Some(Value::Null) => {
            obj.insert("rootfs".into(), json!({"type": "layers", "diff_ids": [new_diff_id]}));
        }
        Some(_) => return Err(FlattenError::Config("`rootfs` is not an object".into())),
    }

    let entry = json!({
        "created": created,
        "created_by": HISTORY_CREATED_BY,
        "comment": HISTORY_COMMENT,
    });
    match obj.get_mut("history") {
        Some(Value::Array(history)) => {
            for (i, h) in history.iter_mut().enumerate() {
                match h {
                    Value::Object(h) => {
                        h.insert("empty_layer".into(), Value::Bool(true));
                    }
                    _ => return Err(FlattenError::Config(format!("`history[{i}]` is not an object"))),
                }
            }
            history.push(entry);
        }
        None | Some(Value::Null) => {
            obj.insert("history".into(), json!([entry]));
        }
        Some(_) => return Err(FlattenError::Config("`history` is not an array".into())),
    }

    serde_json::to_vec(&config).map_err(|e| FlattenError::Config(e.to_string()))
}

/// The newest parseable `created` of the history, else the config's own.
fn newest_created(obj: &Map<String, Value>) -> Option<String> {
    let from_history = obj
        .get("history")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|h| h.get("created")?.as_str())
        .filter_map(|s| Some((parse_rfc3339(s)?, s)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, s)| s.to_string());
    from_history.or_else(|| {
        let s = obj.get("created")?.as_str()?;
        parse_rfc3339(s).map(|_| s.to_string())
    })
}

/// Parse an RFC 3339 timestamp to (seconds since the epoch, nanoseconds), as
/// Docker and OCI configs write `created`: any number of fractional digits
/// (nanoseconds kept), `Z` or a `+hh:mm` offset. (humantime's parser takes no
/// offsets, so chrono's, already in the tree through suppaftp.)
fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some((t.timestamp(), t.timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse_rfc3339("2024-03-01T12:34:56.5Z"), Some((1_709_296_496, 500_000_000)));
        assert_eq!(parse_rfc3339("2024-03-01T14:34:56.123456789123+02:00"), Some((1_709_296_496, 123_456_789)));
        assert_eq!(parse_rfc3339("2024-03-01"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn rfc3339_as_docker_and_oci_configs_write_it() {
        let utc = parse_rfc3339("2023-05-01T12:34:56.123456789Z").unwrap();
        assert_eq!(utc, (1_682_944_496, 123_456_789));
        assert_eq!(parse_rfc3339("2023-05-01T14:34:56.123456789+02:00"), Some(utc));
        assert_eq!(parse_rfc3339("2023-05-01T07:34:56.123456789-05:00"), Some(utc));
        assert_eq!(parse_rfc3339("2023-05-01 12:34:56.123456789z"), Some(utc));
        assert_eq!(parse_rfc3339("2023-05-01T12:34:56Z"), Some((1_682_944_496, 0)));
        // Not a date, no offset, an offset out of range.
        for bad in ["2023-02-30T00:00:00Z", "2023-05-01T12:34:56", "2023-05-01T12:34:56+24:00", "2023-05-01T12:34:56.Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_rewrite_keeps_everything_else() {
        let raw = br#"{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Healthcheck":{"Test":["CMD","true"],"Interval":30000000000},"OnBuild":["RUN x"],"StopSignal":"SIGQUIT","Shell":["/bin/bash","-c"],"Weird":{"z":1,"a":2}},"created":"2024-01-02T00:00:00Z","history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD file"},{"created":"2024-01-03T10:00:00.5+01:00","created_by":"RUN b","empty_layer":true},{"created":"2024-01-02T00:00:00Z","created_by":"RUN c","comment":"c"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]},"x-unknown":[1,2,{"q":null}],"variant":"v8"}"#;
        let out = flatten_config(raw, DIFF).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let orig: Value = serde_json::from_slice(raw).unwrap();
        // untouched fields, same order
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let okeys: Vec<&String> = orig.as_object().unwrap().keys().collect();
        assert_eq!(keys, okeys);
        for k in ["architecture", "config", "created", "os", "x-unknown", "variant"] {
            assert_eq!(v[k], orig[k], "{k}");
        }
        let cfg_keys: Vec<&String> = v["config"].as_object().unwrap().keys().collect();
        assert_eq!(cfg_keys, ["Env", "Healthcheck", "OnBuild", "StopSignal", "Shell", "Weird"]);
        assert_eq!(v["rootfs"], json!({"type": "layers", "diff_ids": [DIFF]}));
        let h = v["history"].as_array().unwrap();
        assert_eq!(h.len(), 4);
        for (i, e) in h[..3].iter().enumerate() {
            assert_eq!(e["empty_layer"], json!(true));
            assert_eq!(e["created_by"], orig["history"][i]["created_by"]);
            assert_eq!(e["created"], orig["history"][i]["created"]);
        }
        assert_eq!(h[2]["comment"], json!("c"));
        // newest history time (by instant, not by string order), verbatim
        assert_eq!(h[3], json!({"created": "2024-01-03T10:00:00.5+01:00", "created_by": "ferry flatten", "comment": "flattened by ferry"}));
        // non-empty history entries == number of diff_ids
        let non_empty = h.iter().filter(|e| e.get("empty_layer") != Some(&json!(true))).count();
        assert_eq!(non_empty, v["rootfs"]["diff_ids"].as_array().unwrap().len());
        // deterministic
        assert_eq!(flatten_config(raw, DIFF).unwrap(), out);
    }

    #[test]
    fn config_without_history_or_rootfs() {
        let out = flatten_config(br#"{"created":"2020-05-05T05:05:05Z","config":{}}"#, DIFF).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["rootfs"]["diff_ids"], json!([DIFF]));
        assert_eq!(v["history"].as_array().unwrap().len(), 1);
        assert_eq!(v["history"][0]["created"], json!("2020-05-05T05:05:05Z"));

        // no time anywhere: now
        let out = flatten_config(br#"{}"#, DIFF).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let t = v["history"][0]["created"].as_str().unwrap();
        assert!(parse_rfc3339(t).is_some(), "{t}");
    }

    #[test]
    fn config_errors() {
        assert!(matches!(flatten_config(b"{}", "sha256:xyz"), Err(FlattenError::Config(_))));
        assert!(matches!(flatten_config(b"[]", DIFF), Err(FlattenError::Config(_))));
        assert!(matches!(flatten_config(b"{nope", DIFF), Err(FlattenError::Config(_))));
        assert!(matches!(flatten_config(br#"{"history":{}}"#, DIFF), Err(FlattenError::Config(_))));
    }
}
