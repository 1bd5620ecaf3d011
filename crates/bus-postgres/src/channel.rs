//! Topics as PostgreSQL channel names: `{namespace}_f` (fleet),
//! `{namespace}_s_{server id}`, `{namespace}_r_{p}_{q}` with negative
//! coordinates written `m3` for -3 (`craft_r_m3_4`). Lowercase letters,
//! digits and `_` only, at most 56 bytes (a 32-byte namespace, the longest
//! region suffix): valid identifiers under PostgreSQL's 63-byte limit,
//! quoted as they are.

use bus_core::{Namespace, RegionPos, ServerId, Topic};

/// The channel of `topic` in `namespace`.
pub fn channel(namespace: &Namespace, topic: Topic) -> String {
    match topic {
        Topic::Fleet => format!("{namespace}_f"),
        Topic::Server(id) => format!("{namespace}_s_{id}"),
        Topic::Region(r) => format!("{namespace}_r_{}_{}", coordinate(r.p), coordinate(r.q)),
    }
}

/// The topic of `channel` if it belongs to `namespace`.
pub fn topic(namespace: &Namespace, channel: &str) -> Option<Topic> {
    let rest = channel
        .strip_prefix(namespace.as_str())?
        .strip_prefix('_')?;
    if rest == "f" {
        return Some(Topic::Fleet);
    }
    if let Some(id) = rest.strip_prefix("s_") {
        return id.parse::<ServerId>().ok().map(Topic::Server);
    }
    let (p, q) = rest.strip_prefix("r_")?.split_once('_')?;
    Some(Topic::Region(RegionPos::new(
        parse_coordinate(p)?,
        parse_coordinate(q)?,
    )))
}

fn coordinate(v: i32) -> String {
    if v < 0 {
        format!("m{}", v.unsigned_abs())
    } else {
        v.to_string()
    }
}

fn parse_coordinate(s: &str) -> Option<i32> {
    // Only the canonical spelling: no sign, no leading zeros, no "m0".
    let canonical = |digits: &str| {
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
    };
    match s.strip_prefix('m') {
        Some(digits) if canonical(digits) && digits != "0" => {
            let v: i64 = digits.parse().ok()?;
            i32::try_from(-v).ok()
        }
        Some(_) => None,
        None if canonical(s) => s.parse().ok(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fit() {
        let ns = Namespace::new("craft").expect("valid");
        let long = Namespace::new(&"n".repeat(Namespace::MAX_LEN)).expect("valid");
        let topics = [
            Topic::Fleet,
            Topic::Server(ServerId::new(u64::MAX)),
            Topic::Server(ServerId::new(1)),
            Topic::Region(RegionPos::new(0, 0)),
            Topic::Region(RegionPos::new(-3, 4)),
            Topic::Region(RegionPos::new(i32::MIN, i32::MAX)),
            Topic::Region(RegionPos::new(i32::MIN / 8, i32::MAX / 8)),
        ];
        for namespace in [&ns, &long] {
            for topic in topics {
                let name = channel(namespace, topic);
                assert!(name.len() <= 63, "{name}");
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{name}"
                );
                assert_eq!(super::topic(namespace, &name), Some(topic), "{name}");
            }
        }
        assert_eq!(
            channel(&ns, Topic::Region(RegionPos::new(-3, 4))),
            "craft_r_m3_4"
        );
        assert_eq!(channel(&ns, Topic::Fleet), "craft_f");
    }

    #[test]
    fn foreign_and_malformed_names_are_not_topics() {
        let ns = Namespace::new("craft").expect("valid");
        let other = Namespace::new("craft_two").expect("valid");
        assert_eq!(topic(&ns, &channel(&other, Topic::Fleet)), None);
        for name in [
            "craft",
            "craft_",
            "craftf",
            "craft_x",
            "craft_s_12",
            "craft_r_1",
            "craft_r_1_2_3",
            "craft_r_m0_1",
            "craft_r_01_1",
            "craft_r_-1_1",
            "craft_r_m2147483649_0",
            "other_f",
        ] {
            assert_eq!(topic(&ns, name), None, "{name}");
        }
    }
}
