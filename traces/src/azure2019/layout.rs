//! The column layouts of a 2019 trace's files, recognised by their header's names.
//!
//! Two families are read:
//! - **the dataset's own** (Azure Functions 2019): invocations
//!   `HashOwner,HashApp,HashFunction,Trigger,1,…,1440`; durations
//!   `HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,…`;
//!   memory per app `HashOwner,HashApp,SampleCount,AverageAllocatedMb,…`;
//! - **InVitro's samples** (vHive's load generator, `data/traces/` of vhive-serverless/invitro):
//!   the same files with the three hashes in another order and no `Trigger`
//!   (`HashFunction,HashApp,HashOwner,minute_1,…,minute_1440`), durations with the hashes first
//!   in any order (`HashFunction,HashApp,HashOwner,Count,Average,…`), and memory per app
//!   (`HashApp,HashOwner,SampleCount,…`) or per function
//!   (`HashOwner,HashApp,HashFunction,SampleCount,…`).
//!
//! Every column is found by its name, so the order of the columns never matters; a header that
//! lacks one is refused with the names it needs.

use super::parse::{DURATIONS_HEADER, MINUTES_PER_DAY};

/// The trigger of a function whose invocation file has no `Trigger` column (InVitro's).
pub const NO_TRIGGER: &str = "unknown";

/// Where the three hashes of a function's key are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyColumns {
    pub owner: usize,
    pub app: usize,
    pub function: usize,
}

/// The columns of an invocation file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvocationColumns {
    pub key: KeyColumns,
    pub trigger: Option<usize>,
    /// The column of minute 1; minutes 1 to 1440 follow it in order.
    pub first_minute: usize,
}

/// The columns of a durations file: the key, then `Average, Count, Minimum, Maximum` and the
/// percentiles 0, 1, 25, 50, 75, 99, 100, in that order in [`DurationColumns::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationColumns {
    pub key: KeyColumns,
    pub stats: [usize; 11],
}

/// The names of [`DurationColumns::stats`], in order: the dataset's durations header after
/// its three hashes.
pub const DURATION_STATS: &[&str] = DURATIONS_HEADER.split_at(3).1;

/// The columns of a memory file: per app, or per function where it has `HashFunction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryColumns {
    pub owner: usize,
    pub app: usize,
    pub function: Option<usize>,
    pub average_mb: usize,
}

fn find(header: &[String], name: &str) -> Option<usize> {
    header.iter().position(|h| h == name)
}

fn key_columns(header: &[String]) -> Option<KeyColumns> {
    Some(KeyColumns {
        owner: find(header, "HashOwner")?,
        app: find(header, "HashApp")?,
        function: find(header, "HashFunction")?,
    })
}

/// Whether column `i` names minute `m` (1-based): `m` or `minute_m`.
fn names_minute(header: &[String], i: usize, m: u32) -> bool {
    header.get(i).is_some_and(|h| {
        let n = h.strip_prefix("minute_").unwrap_or(h);
        n.parse::<u32>() == Ok(m)
    })
}

impl InvocationColumns {
    /// The layout of `header`, or what it lacks.
    pub fn of(header: &[String]) -> Result<Self, String> {
        let want = "the hashes `HashOwner`, `HashApp`, `HashFunction` (an optional `Trigger`) and then 1440 minute columns `1`…`1440` or `minute_1`…`minute_1440`";
        let key = key_columns(header).ok_or_else(|| format!("expected {want}"))?;
        let trigger = find(header, "Trigger");
        let first_minute = 3 + usize::from(trigger.is_some());
        let named = [key.owner, key.app, key.function].into_iter().chain(trigger);
        if named.into_iter().any(|c| c >= first_minute) {
            return Err(format!("the key columns must come first; expected {want}"));
        }
        if header.len() != first_minute + MINUTES_PER_DAY as usize
            || !(1..=MINUTES_PER_DAY).all(|m| names_minute(header, first_minute + m as usize - 1, m))
        {
            return Err(format!(
                "found {} columns; expected {want} ({} in all)",
                header.len(),
                first_minute + MINUTES_PER_DAY as usize
            ));
        }
        Ok(InvocationColumns {
            key,
            trigger,
            first_minute,
        })
    }
}

impl DurationColumns {
    /// The layout of `header`, or what it lacks.
    pub fn of(header: &[String]) -> Result<Self, String> {
        let want = || {
            format!(
                "expected `HashOwner`, `HashApp`, `HashFunction` and {}",
                DURATION_STATS
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let key = key_columns(header).ok_or_else(want)?;
        let mut stats = [0; 11];
        for (slot, &name) in stats.iter_mut().zip(DURATION_STATS) {
            *slot = find(header, name).ok_or_else(|| format!("no `{name}` column; {}", want()))?;
        }
        if header.len() != 14 {
            return Err(format!("found {} columns; {} (14 in all)", header.len(), want()));
        }
        Ok(DurationColumns { key, stats })
    }
}

impl MemoryColumns {
    /// The layout of `header`, or what it lacks.
    pub fn of(header: &[String]) -> Result<Self, String> {
        let want = "expected `HashOwner`, `HashApp` (and `HashFunction` for memory per function), `SampleCount` and `AverageAllocatedMb`";
        match (
            find(header, "HashOwner"),
            find(header, "HashApp"),
            find(header, "SampleCount"),
            find(header, "AverageAllocatedMb"),
        ) {
            (Some(owner), Some(app), Some(_), Some(average_mb)) => Ok(MemoryColumns {
                owner,
                app,
                function: find(header, "HashFunction"),
                average_mb,
            }),
            _ => Err(want.into()),
        }
    }
}

/// The header's fields, as a reader sees them (trimmed, without a byte-order mark).
pub fn fields(first_line: &str) -> Vec<String> {
    first_line
        .trim_start_matches('\u{feff}')
        .trim_end()
        .split(',')
        .map(|f| f.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(keys: &str, minute: impl Fn(u32) -> String) -> Vec<String> {
        let mut h: Vec<String> = keys.split(',').map(str::to_string).collect();
        h.extend((1..=MINUTES_PER_DAY).map(minute));
        h
    }

    #[test]
    fn invocation_layouts_of_the_dataset_and_of_invitro() {
        let azure =
            InvocationColumns::of(&header("HashOwner,HashApp,HashFunction,Trigger", |m| m.to_string())).unwrap();
        assert_eq!((azure.key.owner, azure.trigger, azure.first_minute), (0, Some(3), 4));
        let invitro =
            InvocationColumns::of(&header("HashFunction,HashApp,HashOwner", |m| format!("minute_{m}"))).unwrap();
        assert_eq!(
            (
                invitro.key.function,
                invitro.key.owner,
                invitro.trigger,
                invitro.first_minute
            ),
            (0, 2, None, 3)
        );
        let short = header("HashOwner,HashApp,HashFunction", |m| m.to_string());
        assert!(InvocationColumns::of(&short[..100]).unwrap_err().contains("1440"));
        let shuffled = header("HashOwner,HashApp,HashFunction", |m| (1441 - m).to_string());
        assert!(InvocationColumns::of(&shuffled).is_err());
    }

    #[test]
    fn durations_and_memory_by_name() {
        let d: Vec<String> = "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100"
            .split(',')
            .map(str::to_string)
            .collect();
        let d = DurationColumns::of(&d).unwrap();
        assert_eq!((d.key.owner, d.stats[0], d.stats[1]), (2, 4, 3));
        let m = MemoryColumns::of(&fields(
            "HashApp,HashOwner,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1",
        ))
        .unwrap();
        assert_eq!((m.owner, m.app, m.function, m.average_mb), (1, 0, None, 3));
        let per_function =
            MemoryColumns::of(&fields("HashOwner,HashApp,HashFunction,SampleCount,AverageAllocatedMb")).unwrap();
        assert_eq!(per_function.function, Some(2));
        assert!(MemoryColumns::of(&fields("HashOwner,HashApp,SampleCount")).is_err());
    }
}
