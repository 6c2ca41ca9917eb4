/*
 * The ceiling for `make bench`: how fast SQLite itself stores the rows pilotwatch stored, with
 * nothing of ours around it.
 *
 *   sqlite-ceiling SOURCE TARGET MESSAGES_PER_COMMIT
 *
 * SOURCE is a store `pilotwatch serve` filled. TARGET (must not exist) gets SOURCE's schema
 * (tables, indexes, triggers) and its pilot, indicator, device and subject rows (untimed); then,
 * timed, the message rows and their observation, event and pilot_observation rows are inserted
 * again, in arrival order (messages by received_at, observations by time, interleaved in
 * proportion), with the statements the service uses (INSERT ... ON CONFLICT DO NOTHING), its
 * settings (WAL, synchronous=FULL, foreign keys on, SQLite in multi-thread mode without memory
 * statistics; a 32 MiB cache, where serve's is 8) and one transaction per MESSAGES_PER_COMMIT
 * messages. No validation, no JSON, no roll-ups, no counters.
 *
 * Prints: "messages M observations O seconds S".
 *
 * Build: cc -O2 -o sqlite-ceiling sqlite-ceiling.c -lsqlite3
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct message { sqlite3_int64 device; char *msg_id; sqlite3_int64 received_at; };
struct row { int table; sqlite3_int64 owner, indicator, at, device; double value; };

static void die(sqlite3 *db, const char *what) {
    fprintf(stderr, "sqlite-ceiling: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
    char *error = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &error) != SQLITE_OK) {
        fprintf(stderr, "sqlite-ceiling: %s: %s\n", sql, error);
        exit(1);
    }
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) die(db, sql);
    return s;
}

static int by_at(const void *a, const void *b) {
    sqlite3_int64 x = ((const struct row *)a)->at, y = ((const struct row *)b)->at;
    return x < y ? -1 : x > y;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4 || atoi(argv[3]) < 1) {
        fprintf(stderr, "usage: sqlite-ceiling SOURCE TARGET MESSAGES_PER_COMMIT\n");
        return 64;
    }
    int per_commit = atoi(argv[3]);
    /* As `pilotwatch` configures its process (Store.configureProcess). */
    if (sqlite3_config(SQLITE_CONFIG_MULTITHREAD) != SQLITE_OK || sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK) {
        fprintf(stderr, "sqlite-ceiling: SQLite refused its process configuration\n");
        return 1;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open(argv[2], &db) != SQLITE_OK) die(db, argv[2]);
    exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -32768;"
             "PRAGMA wal_autocheckpoint = 32768; PRAGMA journal_size_limit = 268435456;");
    char attach[4096];
    snprintf(attach, sizeof attach, "ATTACH 'file:%s?mode=ro' AS src", argv[1]);
    sqlite3_close(db);
    if (sqlite3_open_v2(argv[2], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) != SQLITE_OK) die(db, argv[2]);
    exec(db, "PRAGMA synchronous = FULL; PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 32768;"
             "PRAGMA foreign_keys = ON;");
    exec(db, attach);

    /* Schema and the parent rows, untimed. */
    sqlite3_stmt *schema = prepare(db, "SELECT sql FROM src.sqlite_master WHERE sql IS NOT NULL "
                                       "AND name NOT LIKE 'sqlite_%' ORDER BY rowid");
    exec(db, "BEGIN");
    while (sqlite3_step(schema) == SQLITE_ROW) exec(db, (const char *)sqlite3_column_text(schema, 0));
    sqlite3_finalize(schema);
    exec(db, "INSERT INTO main.pilot SELECT * FROM src.pilot; INSERT INTO main.indicator SELECT * FROM src.indicator;"
             "INSERT INTO main.device SELECT * FROM src.device; INSERT INTO main.subject SELECT * FROM src.subject;"
             "COMMIT");

    /* The rows to insert, in memory. */
    size_t nm = 0, cm = 1 << 16, nr = 0, cr = 1 << 16;
    struct message *messages = malloc(cm * sizeof *messages);
    struct row *rows = malloc(cr * sizeof *rows);
    if (!messages || !rows) die(NULL, "reading");
    sqlite3_stmt *m = prepare(db, "SELECT device_id, msg_id, received_at FROM src.message ORDER BY received_at, length(msg_id), msg_id");
    while (sqlite3_step(m) == SQLITE_ROW) {
        if (nm == cm && !(messages = realloc(messages, (cm *= 2) * sizeof *messages))) die(NULL, "reading");
        messages[nm].device = sqlite3_column_int64(m, 0);
        messages[nm].msg_id = strdup((const char *)sqlite3_column_text(m, 1));
        messages[nm].received_at = sqlite3_column_int64(m, 2);
        nm++;
    }
    sqlite3_finalize(m);
    static const char *tables[3] = {"observation", "event", "pilot_observation"};
    static const char *owners[3] = {"subject_id", "subject_id", "pilot_id"};
    for (int t = 0; t < 3; t++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT %s, indicator_id, at, value, device_id FROM src.%s", owners[t], tables[t]);
        sqlite3_stmt *r = prepare(db, sql);
        while (sqlite3_step(r) == SQLITE_ROW) {
            if (nr == cr && !(rows = realloc(rows, (cr *= 2) * sizeof *rows))) die(NULL, "reading");
            rows[nr] = (struct row){t, sqlite3_column_int64(r, 0), sqlite3_column_int64(r, 1), sqlite3_column_int64(r, 2),
                                    sqlite3_column_int64(r, 4), sqlite3_column_double(r, 3)};
            nr++;
        }
        sqlite3_finalize(r);
    }
    qsort(rows, nr, sizeof *rows, by_at);
    exec(db, "DETACH src");

    sqlite3_stmt *insert_message = prepare(db, "INSERT INTO message (device_id, msg_id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
    sqlite3_stmt *insert_row[3];
    for (int t = 0; t < 3; t++) {
        char sql[256];
        snprintf(sql, sizeof sql, "INSERT INTO %s (%s, indicator_id, at, value, device_id) VALUES (?, ?, ?, ?, ?) "
                                  "ON CONFLICT DO NOTHING", tables[t], owners[t]);
        insert_row[t] = prepare(db, sql);
    }

    /* Timed: the inserts and the commits. */
    double start = seconds();
    size_t next = 0;
    for (size_t i = 0; i < nm; i++) {
        if (i % per_commit == 0) exec(db, "BEGIN IMMEDIATE");
        sqlite3_bind_int64(insert_message, 1, messages[i].device);
        sqlite3_bind_text(insert_message, 2, messages[i].msg_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(insert_message, 3, messages[i].received_at);
        if (sqlite3_step(insert_message) != SQLITE_DONE) die(db, "inserting a message");
        sqlite3_reset(insert_message);
        size_t until = (size_t)((double)nr * (double)(i + 1) / (double)nm);
        for (; next < until; next++) {
            sqlite3_stmt *s = insert_row[rows[next].table];
            sqlite3_bind_int64(s, 1, rows[next].owner);
            sqlite3_bind_int64(s, 2, rows[next].indicator);
            sqlite3_bind_int64(s, 3, rows[next].at);
            sqlite3_bind_double(s, 4, rows[next].value);
            sqlite3_bind_int64(s, 5, rows[next].device);
            if (sqlite3_step(s) != SQLITE_DONE) die(db, "inserting an observation");
            sqlite3_reset(s);
        }
        if ((i + 1) % per_commit == 0 || i + 1 == nm) exec(db, "COMMIT");
    }
    double secs = seconds() - start;
    printf("messages %zu observations %zu seconds %.3f\n", nm, nr, secs);
    sqlite3_close(db);
    return 0;
}
