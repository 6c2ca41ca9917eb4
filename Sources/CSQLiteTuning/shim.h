// Process-wide SQLite settings that Swift cannot make itself: `sqlite3_config` is variadic, and
// Swift does not call C variadic functions. sqlite3.h is not included (GRDB's module owns it);
// the option numbers are SQLite's stable ABI (https://sqlite.org/c3ref/c_config_covering_index_scan.html).
#ifndef PILOTWATCH_SQLITE_TUNING_H
#define PILOTWATCH_SQLITE_TUNING_H

int sqlite3_config(int, ...);

/// SQLITE_CONFIG_MULTITHREAD (2): no mutex on each call into a connection; a connection must
/// then be used by one thread at a time. SQLITE_OK (0), or SQLITE_MISUSE (21) once SQLite is
/// initialised.
static inline int pilotwatch_sqlite_multithread(void) { return sqlite3_config(2); }

/// SQLITE_CONFIG_MEMSTATUS (9) off: no global mutex around every allocation to keep
/// sqlite3_memory_used() (which pilotwatch does not read).
static inline int pilotwatch_sqlite_memstatus_off(void) { return sqlite3_config(9, 0); }

#endif
