//! How the process's memory is set up for its allocator (mimalloc, declared by the `drgw`
//! binary and by the mirror benchmark).

/// Turns transparent huge pages off for the whole process (Linux `PR_SET_THP_DISABLE`;
/// elsewhere nothing to do). Call it first thing in `main`.
///
/// mimalloc gives freed memory back to the OS after a delay and faults it in again when it
/// needs it; where a mapping may use huge pages, each such fault zeroes a whole 2 MiB page.
/// In the mirror benchmark at 128 clients that zeroing (`clear_page_erms` under mimalloc's
/// page allocation) was 10–12 % of the process's CPU, and it disappeared with huge pages
/// off. The gateway's allocations are small and short-lived, so it has nothing to gain from
/// huge pages.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}
