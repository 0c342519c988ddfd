//! For the tests of the history database: one runtime per test binary. The databases
//! themselves come from `portgate_test_support::db`.

/// One runtime for every test of a binary: a store's connections belong to the runtime that
/// opened them.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    });
    RUNTIME.block_on(f)
}
