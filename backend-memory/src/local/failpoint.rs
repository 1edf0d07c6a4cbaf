//! Named write steps for crash tests: with the `failpoints` feature (tests only), the process
//! dies like `kill -9` at the step [`FAILPOINT_ENV`] names; without it the steps compile to
//! nothing.

/// The environment variable naming the step where a `failpoints` build dies.
#[cfg(feature = "failpoints")]
pub const FAILPOINT_ENV: &str = "SPIDERPOOL_FAILPOINT";

/// Every write step of the store, in the order a commit reaches them: a `failpoints` build
/// dies at the one [`FAILPOINT_ENV`] names.
#[cfg(feature = "failpoints")]
pub const FAILPOINT_STEPS: &[&str] = &[
    // Appending a record to the journal.
    "journal-created",      // a new empty journal, the directory not yet flushed
    "journal-tail-cut",     // a record a crash left unfinished cut off
    "journal-before-write", // nothing of the record written yet
    "journal-half-written", // half of the record written
    "journal-written",      // the whole record written, not flushed
    "journal-synced",       // the record flushed: the commit is durable
    // Folding the journal into a new snapshot.
    "snapshot-tmp-created", // the temporary file created (or emptied), nothing written
    "snapshot-tmp-written", // the temporary file written, not flushed
    "snapshot-tmp-synced",  // the temporary file flushed
    "snapshot-renamed",     // renamed over store.json, the directory not flushed
    "snapshot-dir-synced",  // the directory flushed
    "journal-emptied",      // the journal truncated, not flushed
    "journal-emptied-synced",
];

/// Dies like `kill -9` (no destructor, no flush) if `step` is the one [`FAILPOINT_ENV`] names.
#[cfg(feature = "failpoints")]
pub(super) fn failpoint(step: &str) {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    debug_assert!(
        FAILPOINT_STEPS.contains(&step),
        "{step} is not in FAILPOINT_STEPS"
    );
    if ARMED
        .get_or_init(|| std::env::var(FAILPOINT_ENV).ok())
        .as_deref()
        == Some(step)
    {
        let me = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &me])
            .status();
        std::process::abort(); // if `kill` is missing
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(super) fn failpoint(_step: &str) {}
