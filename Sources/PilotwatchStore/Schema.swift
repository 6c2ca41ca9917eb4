import GRDB
import PilotwatchCore

/// The SQLite schema of the store and its named migrations.
///
/// Layout, chosen for the write pattern of ingest (20,000+ small messages per second in
/// batches of 50–500, `synchronous=FULL`, WAL). SQLite's cost there is the number of b-tree
/// pages a commit dirties, not fsync, so:
///
/// - pilots, indicators, devices and subjects get integer surrogate ids (`pilot.id`, ...)
///   that the writer caches in memory; every data row carries small integers, not text;
/// - data tables are `WITHOUT ROWID` and keyed by what deduplicates them, so the key *is*
///   the table (no second index to keep up to date);
/// - roll-ups that metrics read are aggregated in memory per batch and upserted once per key;
/// - every time is an INTEGER of UTC epoch milliseconds, every day an INTEGER of days since
///   1970-01-01 (`Instant.millis`, `Day.index`).
///
/// Tables:
///
/// | table | key | one row per |
/// | --- | --- | --- |
/// | `pilot` | `id`, unique `code` | pilot code seen in a parsed topic (accepted or refused message) |
/// | `indicator` | `id`, unique `code` | indicator code seen in an accepted observation |
/// | `device` | `id`, unique `(pilot_id, code)` | device seen in a parsed topic; counters, last status |
/// | `subject` | `id`, unique `(pilot_id, code)` | pseudonym with at least one stored observation/event; enrolment; activity roll-up (v2) |
/// | `message` | `(device_id, msg_id)` | stored observation message (message dedup) |
/// | `observation` | `(subject_id, indicator_id, at)` | measurement or score (observation dedup) |
/// | `event` | `(subject_id, indicator_id, at)` | subject event (enrolled, withdrawn, hospitalisation, ...) |
/// | `pilot_observation` | `(pilot_id, indicator_id, at)` | pilot-level observation (no subject) |
/// | `subject_day` | `(subject_id, day)` | UTC day on which a subject has measurements/scores: `n`, `first_at`, `last_at` |
/// | `subject_indicator` | `(subject_id, indicator_id)` | measurement/score indicator of a subject: `n`, first and last value |
/// | `pilot_day` | `(pilot_id, day)` | pilot and UTC day *received*: message and observation counters |
/// | `refusal_day` | `(pilot_id, day, reason)` | refusals by pilot (0: topic did not parse), day received and reason |
/// | `ingest_total` | `id = 1` | store-wide counters |
/// | `inbox_applied` | `id = 1` | how far `serve`'s inbox journal is applied (v3) |
/// | `reject` | `id` | quarantined message: topic, time, codes, reason, detail, payload hash |
/// | `reject_payload` | `reject_id` | the payload of a reject, never for `identifying_data` (a trigger refuses it) |
/// | `inbox_scrub` | `(segment, offset)` | inbox record refused as hash only, whose bytes are being overwritten (v4) |
/// | `service_heartbeat` | `id = 1` | `serve`'s last sign of life: broker connection, backlog, apply lag (v5) |
/// | `alert` | `id`, unique open `(rule, target)` | alert raised by `serve`: values, cleared at, delivery pending (v6) |
/// | `snapshot` | `(pilot, as_of)` | day-end snapshot of an aggregate pilot, its latest revision, as received (v8) |
///
/// A device's status is the last one *received* (`status_received_at`), not the one with the
/// latest `at`: a device clock that runs ahead must not freeze its health view. `status_at` is
/// the status's own `at` (or the time received when it had none); battery and firmware keep
/// their last reported values when a status omits them.
///
/// `subject.enrolled_at` is the time of the subject's first `enrolled` event and
/// `subject.withdrawn_at` that of its first `withdrawn` event strictly after it; both are
/// recomputed from `event` whenever such an event is stored, so arrival order does not matter.
///
/// Pilots and devices are learned from every parsed topic, refused messages included, so that
/// refusals count per pilot (`pilot_day.refused`, `refusal_day`) and a device that only sends
/// refused messages still shows when it was last seen. `refusal_day.pilot_id` is 0, with no
/// foreign key, for messages whose topic did not parse and for `store_error`, the service's own
/// refusals, which never count against a pilot or device.
///
/// Write cost, measured with the ingest benchmark (one-observation messages from 500 devices
/// and 5,000 subjects, batches of 256): each commit dirties about one leaf page per message in
/// each of `message`, `observation`, `subject_day` and `subject_indicator`, since their keys
/// start with a device or subject id that arrives in random order. Keying `subject_day` by
/// `(day, subject_id)` would write ~25% fewer bytes but makes per-subject reads scan every
/// subject's days; dropping `subject_indicator` ~15% fewer, at one more key seek per
/// subject and indicator when metrics are read.
///
/// Reading, for metrics (see ``StoreReader``): outcome baselines and latest values are one
/// primary-key seek each into `observation` (`subject_id, indicator_id, at >= x` ascending,
/// or `at <= T` descending); activity and adherence read the subject's activity roll-up
/// (`subject.last_measure_at`, `activity_lo`, `activity_hi`, see ``v2``) when it has nothing
/// after `T`, and its `subject_day` rows otherwise (an `--as-of` in the past); event rates read
/// `event`.
enum Schema {
    /// The migrations, in order. Each runs in its own transaction; identifiers never change.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2-subject-activity") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3-inbox") { db in
            try db.execute(sql: v3)
        }
        // Foreign keys are checked after the migration (GRDB's default), so `reject` can be rebuilt
        // under `reject_payload` without the drop cascading.
        migrator.registerMigration("v4-reasons-1.1-inbox-scrub") { db in
            try db.execute(sql: v4)
        }
        migrator.registerMigration("v5-heartbeat") { db in
            try db.execute(sql: v5)
        }
        migrator.registerMigration("v6-alerts") { db in
            try db.execute(sql: v6)
        }
        migrator.registerMigration("v7-erasure") { db in
            try db.execute(sql: v7)
        }
        migrator.registerMigration("v8-snapshots") { db in
            try db.execute(sql: v8)
        }
        migrator.registerMigration("v9-federation-outbox") { db in
            try db.execute(sql: v9)
        }
        migrator.registerMigration("v10-pilot-archive") { db in
            try db.execute(sql: v10)
        }
        return migrator
    }

    /// The subject's activity roll-up: its latest measurement or score (`last_measure_at`) and
    /// the UTC days with one among the 128 days ending on that one's day, as a bit set in two
    /// INTEGERs (bit k of `activity_lo`, or bit k - 64 of `activity_hi`, stands for the day
    /// `day(last_measure_at) - k`; bit 63 makes the INTEGER negative). The writer shifts the set
    /// when a later day arrives, so that a dashboard at "now" reads one row per subject instead
    /// of its `subject_day` rows. Existing stores are filled from `subject_day`.
    static let v2 = """
        ALTER TABLE subject ADD COLUMN last_measure_at INTEGER;
        ALTER TABLE subject ADD COLUMN activity_lo INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE subject ADD COLUMN activity_hi INTEGER NOT NULL DEFAULT 0;
        UPDATE subject SET last_measure_at = (SELECT max(last_at) FROM subject_day WHERE subject_id = subject.id);
        UPDATE subject SET
            activity_lo = \(activityWordFromDays(subject: "subject", word: 0)),
            activity_hi = \(activityWordFromDays(subject: "subject", word: 1))
        WHERE last_measure_at IS NOT NULL;
        """

    /// A subject's activity word (0: `activity_lo`, 1: `activity_hi`) computed from its
    /// `subject_day` rows, as an SQL expression over the `subject` row named `subject`: what the
    /// v2 migration writes and what `db check` compares the stored roll-up with.
    static func activityWordFromDays(subject s: String, word: Int) -> String {
        let lastDay = "\(s).last_measure_at / 86400000"
        let back = 64 * word
        return """
            (SELECT coalesce(sum(1 << (\(lastDay) - d.day - \(back))), 0) FROM subject_day d
             WHERE d.subject_id = \(s).id AND d.day BETWEEN \(lastDay) - \(back + 63) AND \(lastDay) - \(back))
            """
    }

    /// Which inbox (the journal of acknowledged messages, see ``Inbox``) `pilotwatch serve`
    /// applies to this store, and how far; the position is written in the same transaction as
    /// the data.
    static let v3 = """
        CREATE TABLE inbox_applied (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            inbox TEXT NOT NULL CHECK (length(inbox) > 0),
            segment INTEGER NOT NULL CHECK (segment >= 1),
            offset INTEGER NOT NULL CHECK (offset >= 0)
        );
        """

    /// `serve`'s heartbeat (one row, rewritten every few seconds): when it started, its last beat,
    /// the broker connection and since when, the last message received, the inbox backlog and
    /// the apply lag; `stopped_at` once it stopped cleanly. The views tell from it whether
    /// ingest runs, so that a silent pilot is not blamed for our outage.
    static let v5 = """
        CREATE TABLE service_heartbeat (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            started_at INTEGER NOT NULL,
            beat_at INTEGER NOT NULL,
            broker_connected INTEGER NOT NULL CHECK (broker_connected IN (0, 1)),
            connection_since INTEGER NOT NULL,
            last_message_at INTEGER,
            backlog_bytes INTEGER NOT NULL CHECK (backlog_bytes >= 0),
            apply_lag_ms INTEGER NOT NULL CHECK (apply_lag_ms >= 0),
            stopped_at INTEGER
        );
        """

    /// Alerts that `serve` raised and cleared (one row per raise; `cleared_at` once cleared, at
    /// most one open row per rule and target): the values and message that raised it, those of
    /// the latest evaluation that found it holding, and what is still to be delivered: the retained
    /// MQTT message and the alert command of the row's latest transition. `reject_received`
    /// counts the quarantine's growth over the last hour.
    static let v6 = """
        CREATE TABLE alert (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL CHECK (length(rule) > 0),
            target TEXT NOT NULL CHECK (length(target) > 0),
            raised_at INTEGER NOT NULL,
            raised_values TEXT NOT NULL,
            raised_message TEXT NOT NULL,
            -- what the latest evaluation found while it held (the list shows it)
            updated_at INTEGER NOT NULL,
            current_values TEXT NOT NULL,
            message TEXT NOT NULL,
            cleared_at INTEGER CHECK (cleared_at IS NULL OR cleared_at >= raised_at),
            publish_pending INTEGER NOT NULL DEFAULT 0 CHECK (publish_pending IN (0, 1)),
            command_pending INTEGER NOT NULL DEFAULT 0 CHECK (command_pending IN (0, 1))
        );
        CREATE UNIQUE INDEX alert_open ON alert (rule, target) WHERE cleared_at IS NULL;
        CREATE INDEX alert_pending ON alert (id) WHERE publish_pending = 1 OR command_pending = 1;
        CREATE INDEX reject_received ON reject (received_at);
        """

    /// Erasure (`subjects erase`): `erased_subject` holds the tombstones (keyed hash of pilot and
    /// subject, never the pseudonym); `erasure_key` is empty in a live store and holds the store's
    /// erasure keys in a backup copy only (``Store/backup(to:keys:)``), so that a restore brings
    /// them back. A message records the one subject it named (`subject_id`, NULL for none or
    /// several) and how many observations it carried, so that an erasure takes its counts back.
    /// A refusal as `erased_subject` keeps no payload, as `identifying_data`.
    static let v7 = """
        ALTER TABLE message ADD COLUMN subject_id INTEGER;
        ALTER TABLE message ADD COLUMN observations INTEGER CHECK (observations IS NULL OR observations >= 0);
        CREATE TABLE erased_subject (
            hash TEXT PRIMARY KEY CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),
            pilot TEXT NOT NULL CHECK (length(pilot) BETWEEN 1 AND 64),
            erased_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE erasure_key (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE CHECK (length(key) = 64 AND key NOT GLOB '*[^0-9a-f]*')
        );
        CREATE TRIGGER reject_payload_never_erased
        BEFORE INSERT ON reject_payload
        WHEN (SELECT reason FROM reject WHERE id = NEW.reject_id) = 'erased_subject'
        BEGIN
            SELECT RAISE(ABORT, 'the payload of an erased_subject refusal is never stored');
        END;
        CREATE TRIGGER reject_erased_drops_payload
        AFTER UPDATE OF reason ON reject
        WHEN NEW.reason = 'erased_subject'
        BEGIN
            DELETE FROM reject_payload WHERE reject_id = NEW.id;
        END;
        """

    /// Federation (contract 1.1): the day-end snapshots that site instances sent for pilots that
    /// report aggregates, one row per pilot and day end (`as_of`, the day's last millisecond):
    /// a higher revision replaces the row, so superseded revisions are gone. `payload` is the
    /// message as received (JSON text, hashed in `sha256`); it holds pilot-level aggregates only.
    static let v8 = """
        CREATE TABLE snapshot (
            pilot TEXT NOT NULL CHECK (length(pilot) BETWEEN 1 AND 64),
            as_of INTEGER NOT NULL CHECK ((as_of + 1) % 86400000 = 0),
            site TEXT NOT NULL CHECK (length(site) BETWEEN 1 AND 64 AND site NOT LIKE '%/%'),
            revision INTEGER NOT NULL CHECK (revision >= 0),
            msg_id TEXT NOT NULL CHECK (length(msg_id) BETWEEN 1 AND 128),
            received_at INTEGER NOT NULL,
            payload TEXT NOT NULL CHECK (json_valid(payload)),
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
            PRIMARY KEY (pilot, as_of)
        ) WITHOUT ROWID;
        """

    /// A site instance's side of federation: the day-end snapshots waiting to be acknowledged by
    /// the cluster's broker (`federation_outbox`, removed on PUBACK), those sent (kept with their
    /// hash), and per pilot what disclosure control has published (`federation_state`, JSON).
    static let v9 = """
        CREATE TABLE federation_outbox (
            pilot TEXT NOT NULL CHECK (length(pilot) BETWEEN 1 AND 64),
            as_of INTEGER NOT NULL,
            revision INTEGER NOT NULL CHECK (revision >= 0),
            msg_id TEXT NOT NULL CHECK (length(msg_id) BETWEEN 1 AND 128),
            payload TEXT NOT NULL,
            PRIMARY KEY (pilot, as_of)
        ) WITHOUT ROWID;
        CREATE TABLE federation_sent (
            pilot TEXT NOT NULL CHECK (length(pilot) BETWEEN 1 AND 64),
            as_of INTEGER NOT NULL,
            revision INTEGER NOT NULL CHECK (revision >= 0),
            msg_id TEXT NOT NULL,
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
            sent_at INTEGER NOT NULL,
            payload TEXT NOT NULL,
            PRIMARY KEY (pilot, as_of)
        ) WITHOUT ROWID;
        CREATE TABLE federation_state (
            pilot TEXT PRIMARY KEY CHECK (length(pilot) BETWEEN 1 AND 64),
            state TEXT NOT NULL
        ) WITHOUT ROWID;
        """

    /// The reason codes v1 of the schema allows: contract version 1's, fixed (a migration never changes).
    static let reasonList = ReasonCode.version1.map { "'\($0.rawValue)'" }.joined(separator: ",")

    /// The reason codes of contract version 1.1 (v4 of the schema): v1's, `store_error`, and the
    /// ones federation and erasure bring, so that those need no further rebuild of the tables.
    static let reasonList11 = (ReasonCode.version1.map(\.rawValue)
        + ["store_error", "aggregate_pilot", "erased_subject", "unknown_site", "registry_mismatch"])
        .map { "'\($0)'" }.joined(separator: ",")

    /// Contract 1.1's reasons in `reject` and `refusal_day` (SQLite cannot change a CHECK, so
    /// both are rebuilt), and `inbox_scrub`: the inbox records refused as hash only whose bytes
    /// are still to be overwritten in the inbox (``Inbox/scrub(_:)``). A record's row is written
    /// in the transaction that refuses it and deleted once its bytes are overwritten and flushed,
    /// so a crash in between is mended at the next start.
    static let v4 = """
        CREATE TABLE reject_v4 (
            id INTEGER PRIMARY KEY,
            received_at INTEGER NOT NULL,
            topic TEXT NOT NULL,
            pilot TEXT,
            device TEXT,
            reason TEXT NOT NULL CHECK (reason IN (\(reasonList11))),
            detail TEXT NOT NULL,
            payload_sha256 TEXT NOT NULL
                CHECK (length(payload_sha256) = 64 AND payload_sha256 NOT GLOB '*[^0-9a-f]*'),
            CHECK ((pilot IS NULL) = (device IS NULL))
        );
        INSERT INTO reject_v4 SELECT id, received_at, topic, pilot, device, reason, detail, payload_sha256 FROM reject;
        DROP TRIGGER reject_payload_never_identifying;
        DROP TABLE reject;
        ALTER TABLE reject_v4 RENAME TO reject;
        CREATE INDEX reject_by_pilot ON reject (pilot, received_at);
        CREATE TRIGGER reject_payload_never_identifying
        BEFORE INSERT ON reject_payload
        WHEN (SELECT reason FROM reject WHERE id = NEW.reject_id) = 'identifying_data'
        BEGIN
            SELECT RAISE(ABORT, 'the payload of an identifying_data refusal is never stored');
        END;
        CREATE TRIGGER reject_identifying_drops_payload
        AFTER UPDATE OF reason ON reject
        WHEN NEW.reason = 'identifying_data'
        BEGIN
            DELETE FROM reject_payload WHERE reject_id = NEW.id;
        END;

        CREATE TABLE refusal_day_v4 (
            pilot_id INTEGER NOT NULL CHECK (pilot_id >= 0),
            day INTEGER NOT NULL,
            reason TEXT NOT NULL CHECK (reason IN (\(reasonList11))),
            n INTEGER NOT NULL CHECK (n >= 0),
            PRIMARY KEY (pilot_id, day, reason)
        ) WITHOUT ROWID;
        INSERT INTO refusal_day_v4 SELECT pilot_id, day, reason, n FROM refusal_day;
        DROP TABLE refusal_day;
        ALTER TABLE refusal_day_v4 RENAME TO refusal_day;

        CREATE TABLE inbox_scrub (
            segment INTEGER NOT NULL CHECK (segment >= 1),
            offset INTEGER NOT NULL CHECK (offset >= 0),
            length INTEGER NOT NULL CHECK (length > 0),
            PRIMARY KEY (segment, offset)
        ) WITHOUT ROWID;
        """

    static let v1 = """
        CREATE TABLE pilot (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 64),
            first_seen INTEGER NOT NULL,
            last_observation_at INTEGER
        );

        CREATE TABLE indicator (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE CHECK (length(code) >= 1),
            kind TEXT NOT NULL CHECK (kind IN ('measurement', 'score', 'event'))
        );

        CREATE TABLE device (
            id INTEGER PRIMARY KEY,
            pilot_id INTEGER NOT NULL REFERENCES pilot(id),
            code TEXT NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
            first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            messages INTEGER NOT NULL DEFAULT 0 CHECK (messages >= 0),
            duplicates INTEGER NOT NULL DEFAULT 0 CHECK (duplicates >= 0),
            refused INTEGER NOT NULL DEFAULT 0 CHECK (refused >= 0),
            statuses INTEGER NOT NULL DEFAULT 0 CHECK (statuses >= 0),
            observations INTEGER NOT NULL DEFAULT 0 CHECK (observations >= 0),
            status_state TEXT CHECK (status_state IN ('online', 'offline')),
            status_at INTEGER,
            status_received_at INTEGER,
            battery_pct REAL,
            firmware TEXT,
            CHECK (first_seen <= last_seen),
            CHECK ((status_state IS NULL) = (status_at IS NULL) AND (status_at IS NULL) = (status_received_at IS NULL)),
            UNIQUE (pilot_id, code)
        );

        CREATE TABLE subject (
            id INTEGER PRIMARY KEY,
            pilot_id INTEGER NOT NULL REFERENCES pilot(id),
            code TEXT NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
            first_at INTEGER NOT NULL,
            first_measure_at INTEGER,
            enrolled_at INTEGER,
            withdrawn_at INTEGER,
            CHECK (withdrawn_at IS NULL OR (enrolled_at IS NOT NULL AND withdrawn_at > enrolled_at)),
            CHECK (first_measure_at IS NULL OR first_measure_at >= first_at),
            UNIQUE (pilot_id, code)
        );

        CREATE TABLE message (
            device_id INTEGER NOT NULL REFERENCES device(id),
            msg_id TEXT NOT NULL CHECK (length(msg_id) BETWEEN 1 AND 128),
            received_at INTEGER NOT NULL,
            PRIMARY KEY (device_id, msg_id)
        ) WITHOUT ROWID;

        CREATE TABLE observation (
            subject_id INTEGER NOT NULL REFERENCES subject(id),
            indicator_id INTEGER NOT NULL REFERENCES indicator(id),
            at INTEGER NOT NULL,
            value REAL NOT NULL,
            device_id INTEGER NOT NULL REFERENCES device(id),
            PRIMARY KEY (subject_id, indicator_id, at)
        ) WITHOUT ROWID;

        CREATE TABLE event (
            subject_id INTEGER NOT NULL REFERENCES subject(id),
            indicator_id INTEGER NOT NULL REFERENCES indicator(id),
            at INTEGER NOT NULL,
            value REAL NOT NULL,
            device_id INTEGER NOT NULL REFERENCES device(id),
            PRIMARY KEY (subject_id, indicator_id, at)
        ) WITHOUT ROWID;

        CREATE TABLE pilot_observation (
            pilot_id INTEGER NOT NULL REFERENCES pilot(id),
            indicator_id INTEGER NOT NULL REFERENCES indicator(id),
            at INTEGER NOT NULL,
            value REAL NOT NULL,
            device_id INTEGER NOT NULL REFERENCES device(id),
            PRIMARY KEY (pilot_id, indicator_id, at)
        ) WITHOUT ROWID;

        CREATE TABLE subject_day (
            subject_id INTEGER NOT NULL REFERENCES subject(id),
            day INTEGER NOT NULL,
            first_at INTEGER NOT NULL,
            last_at INTEGER NOT NULL,
            n INTEGER NOT NULL CHECK (n > 0),
            CHECK (first_at <= last_at AND first_at >= day * 86400000 AND last_at < (day + 1) * 86400000),
            PRIMARY KEY (subject_id, day)
        ) WITHOUT ROWID;

        CREATE TABLE subject_indicator (
            subject_id INTEGER NOT NULL REFERENCES subject(id),
            indicator_id INTEGER NOT NULL REFERENCES indicator(id),
            n INTEGER NOT NULL CHECK (n > 0),
            first_at INTEGER NOT NULL,
            first_value REAL NOT NULL,
            last_at INTEGER NOT NULL,
            last_value REAL NOT NULL,
            CHECK (first_at <= last_at),
            PRIMARY KEY (subject_id, indicator_id)
        ) WITHOUT ROWID;

        CREATE TABLE pilot_day (
            pilot_id INTEGER NOT NULL REFERENCES pilot(id),
            day INTEGER NOT NULL,
            accepted INTEGER NOT NULL CHECK (accepted >= 0),
            duplicate INTEGER NOT NULL CHECK (duplicate >= 0),
            refused INTEGER NOT NULL CHECK (refused >= 0),
            statuses INTEGER NOT NULL CHECK (statuses >= 0),
            observations INTEGER NOT NULL CHECK (observations >= 0),
            duplicate_observations INTEGER NOT NULL CHECK (duplicate_observations >= 0),
            PRIMARY KEY (pilot_id, day)
        ) WITHOUT ROWID;

        CREATE TABLE refusal_day (
            pilot_id INTEGER NOT NULL CHECK (pilot_id >= 0),
            day INTEGER NOT NULL,
            reason TEXT NOT NULL CHECK (reason IN (\(reasonList))),
            n INTEGER NOT NULL CHECK (n >= 0),
            PRIMARY KEY (pilot_id, day, reason)
        ) WITHOUT ROWID;

        CREATE TABLE ingest_total (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            accepted INTEGER NOT NULL DEFAULT 0 CHECK (accepted >= 0),
            duplicate INTEGER NOT NULL DEFAULT 0 CHECK (duplicate >= 0),
            refused INTEGER NOT NULL DEFAULT 0 CHECK (refused >= 0),
            statuses INTEGER NOT NULL DEFAULT 0 CHECK (statuses >= 0),
            observations INTEGER NOT NULL DEFAULT 0 CHECK (observations >= 0),
            duplicate_observations INTEGER NOT NULL DEFAULT 0 CHECK (duplicate_observations >= 0)
        );
        INSERT INTO ingest_total (id) VALUES (1);

        CREATE TABLE reject (
            id INTEGER PRIMARY KEY,
            received_at INTEGER NOT NULL,
            topic TEXT NOT NULL,
            pilot TEXT,
            device TEXT,
            reason TEXT NOT NULL CHECK (reason IN (\(reasonList))),
            detail TEXT NOT NULL,
            payload_sha256 TEXT NOT NULL
                CHECK (length(payload_sha256) = 64 AND payload_sha256 NOT GLOB '*[^0-9a-f]*'),
            CHECK ((pilot IS NULL) = (device IS NULL))
        );
        CREATE INDEX reject_by_pilot ON reject (pilot, received_at);

        CREATE TABLE reject_payload (
            reject_id INTEGER PRIMARY KEY REFERENCES reject(id) ON DELETE CASCADE,
            payload BLOB NOT NULL
        );

        CREATE TRIGGER reject_payload_never_identifying
        BEFORE INSERT ON reject_payload
        WHEN (SELECT reason FROM reject WHERE id = NEW.reject_id) = 'identifying_data'
        BEGIN
            SELECT RAISE(ABORT, 'the payload of an identifying_data refusal is never stored');
        END;

        CREATE TRIGGER reject_identifying_drops_payload
        AFTER UPDATE OF reason ON reject
        WHEN NEW.reason = 'identifying_data'
        BEGIN
            DELETE FROM reject_payload WHERE reject_id = NEW.id;
        END;
        """

    /// The final figures of an ended pilot whose raw rows the retention policy purged: its day-end
    /// snapshot at its end date, every figure exact (`min_cell` 0), which the views and the export
    /// read instead of its rows.
    static let v10 = """
        CREATE TABLE pilot_archive (
            pilot TEXT PRIMARY KEY CHECK (length(pilot) BETWEEN 1 AND 64),
            as_of INTEGER NOT NULL CHECK ((as_of + 1) % 86400000 = 0),
            archived_at INTEGER NOT NULL,
            payload TEXT NOT NULL CHECK (json_valid(payload)),
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')
        ) WITHOUT ROWID;
        """
}
