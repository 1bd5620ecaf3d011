//! The default of `limits.max_outbound_bytes`: what one client that does
//! not read may hold queued before it is disconnected. Every player could
//! do that at once, so the worst case is the cap times `max_players`; the
//! default keeps that within half the memory the container may use (the
//! cgroup v2 `memory.max` or v1 `memory.limit_in_bytes` of this process),
//! leaving the rest for the players themselves, the chunk cache and the
//! edits waiting for the store.

use std::path::Path;

/// The derived cap never goes below this: a burst of chunk answers when a
/// player joins a busy world must fit.
pub const MIN_OUTBOUND_BYTES: usize = 512 << 10;
/// The derived cap never goes above this, and it is the default when no
/// memory limit is visible.
pub const MAX_OUTBOUND_BYTES: usize = 8 << 20;

/// A cgroup v1 "no limit" is a huge number (a page count short of
/// `i64::MAX`); anything past this is no limit.
const NO_LIMIT: u64 = 1 << 60;

/// The memory limit of this process's cgroup, if one is set and visible.
pub fn memory_limit() -> Option<u64> {
    memory_limit_under(Path::new("/"))
}

/// [`memory_limit`] with `/proc` and `/sys` under `root` (for tests).
pub fn memory_limit_under(root: &Path) -> Option<u64> {
    let cgroups = std::fs::read_to_string(root.join("proc/self/cgroup")).ok()?;
    let read = |path: &Path| -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        let value = text.trim().parse::<u64>().ok()?;
        (value < NO_LIMIT).then_some(value)
    };
    let mut limits = Vec::new();
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            // v2: the tightest limit from this cgroup up to the root (a
            // parent may hold it); also the mount's own root, which is the
            // container's cgroup when the path is not visible inside it.
            let base = root.join("sys/fs/cgroup");
            let mut dir = base.join(path);
            loop {
                limits.extend(read(&dir.join("memory.max")));
                if dir == base || !dir.pop() || !dir.starts_with(&base) {
                    break;
                }
            }
            limits.extend(read(&base.join("memory.max")));
        } else if controllers.split(',').any(|c| c == "memory") {
            let base = root.join("sys/fs/cgroup/memory");
            limits.extend(read(&base.join(path).join("memory.limit_in_bytes")));
            limits.extend(read(&base.join("memory.limit_in_bytes")));
        }
    }
    limits.into_iter().min()
}

/// The per-player outbound cap for a container with `memory_limit` bytes
/// (`None`: no limit visible) and `max_players`: half the memory shared by
/// every player, within [`MIN_OUTBOUND_BYTES`]..=[`MAX_OUTBOUND_BYTES`].
pub fn derived_outbound_bytes(memory_limit: Option<u64>, max_players: usize) -> usize {
    let Some(limit) = memory_limit else {
        return MAX_OUTBOUND_BYTES;
    };
    let players = u64::try_from(max_players.max(1)).unwrap_or(u64::MAX);
    let share = usize::try_from(limit / 2 / players).unwrap_or(usize::MAX);
    share.clamp(MIN_OUTBOUND_BYTES, MAX_OUTBOUND_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn half_the_memory_shared_by_the_players_within_bounds() {
        // The manifests: 1 GiB for 200 players.
        assert_eq!(
            derived_outbound_bytes(Some(1024 * MIB), 200),
            (512 * MIB / 200) as usize
        );
        // Plenty of memory, few players: capped.
        assert_eq!(
            derived_outbound_bytes(Some(64 * 1024 * MIB), 10),
            MAX_OUTBOUND_BYTES
        );
        // Little memory, many players: the floor.
        assert_eq!(
            derived_outbound_bytes(Some(256 * MIB), 5000),
            MIN_OUTBOUND_BYTES
        );
        // No limit visible: the fixed default.
        assert_eq!(derived_outbound_bytes(None, 1000), MAX_OUTBOUND_BYTES);
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    #[test]
    fn reads_cgroup_v2_up_to_the_tightest_parent() {
        let root = tree(&[
            ("proc/self/cgroup", "0::/kubepods/pod1/craft\n"),
            ("sys/fs/cgroup/kubepods/pod1/craft/memory.max", "max\n"),
            ("sys/fs/cgroup/kubepods/pod1/memory.max", "1073741824\n"),
            ("sys/fs/cgroup/kubepods/memory.max", "8589934592\n"),
        ]);
        assert_eq!(memory_limit_under(root.path()), Some(1024 * MIB));
    }

    #[test]
    fn reads_cgroup_v2_inside_a_cgroup_namespace() {
        let root = tree(&[
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/memory.max", "536870912\n"),
        ]);
        assert_eq!(memory_limit_under(root.path()), Some(512 * MIB));
        let unlimited = tree(&[
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/memory.max", "max\n"),
        ]);
        assert_eq!(memory_limit_under(unlimited.path()), None);
    }

    #[test]
    fn reads_cgroup_v1() {
        let root = tree(&[
            (
                "proc/self/cgroup",
                "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
            ),
            ("sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456\n"),
        ]);
        assert_eq!(memory_limit_under(root.path()), Some(256 * MIB));
        let unlimited = tree(&[
            ("proc/self/cgroup", "4:memory:/\n"),
            (
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        assert_eq!(memory_limit_under(unlimited.path()), None);
    }

    #[test]
    fn no_cgroup_information_is_no_limit() {
        let root = tree(&[]);
        assert_eq!(memory_limit_under(root.path()), None);
    }
}
