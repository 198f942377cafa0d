//! Required settings from the environment: a missing one fails the test and names the
//! variable (never a silent skip).

/// Reads a server store's address: with the store's feature on, its tests need the server.
pub fn env_url(var: &str) -> String {
    env_var(var, "a server (this store's feature is on)")
}

/// Reads a required variable, failing with a message that names it and says how to set it.
pub fn env_var(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: these tests need {what}. Start the servers with `env=$(bash .ci/services.sh start); eval \"$env\"` (it prints {var}; see README, \"Stores\"), or run .ci/run, which starts them and sets it.")
    })
}
