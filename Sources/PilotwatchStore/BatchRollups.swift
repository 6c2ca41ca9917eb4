import GRDB
import PilotwatchCore

/// Finishing a batch: the roll-ups, counters, device and subject updates aggregated in memory
/// during the batch, written once per key, one table at a time.
extension BatchWriter {
    /// Writes the roll-ups, counters, device and subject updates aggregated during the batch.
    func finish() throws {
        state.slots = slots
        let subjects = subjectAggregates.sorted { $0.id < $1.id }
        try writeSubjectDays(subjects)
        try writeSubjectIndicators(subjects)
        try writeSubjectChanges(subjects)
        try recomputeEnrolment()
        try writePilotLastObservations()
        try writeDevices()
        try writePilotDays()
        try writeRefusalDays()
        try writeTotals()
    }

    /// The measurements and scores of each subject and day (`subject_day`).
    private func writeSubjectDays(_ subjects: [SubjectAggregate]) throws {
        let upsertSubjectDay = try FastStatement(db, """
            INSERT INTO subject_day (subject_id, day, first_at, last_at, n) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (subject_id, day) DO UPDATE SET
                first_at = min(first_at, excluded.first_at),
                last_at = max(last_at, excluded.last_at),
                n = n + excluded.n
            """)
        for subject in subjects {
            for (day, d) in subject.days.entries.sorted(by: { $0.key < $1.key }) {
                upsertSubjectDay.bind(1, subject.id)
                upsertSubjectDay.bind(2, day)
                upsertSubjectDay.bind(3, d.firstAt)
                upsertSubjectDay.bind(4, d.lastAt)
                upsertSubjectDay.bind(5, d.n)
                try upsertSubjectDay.run()
            }
        }
    }

    /// Each subject's count, first and last value of each indicator (`subject_indicator`).
    private func writeSubjectIndicators(_ subjects: [SubjectAggregate]) throws {
        let upsertSubjectIndicator = try FastStatement(db, """
            INSERT INTO subject_indicator (subject_id, indicator_id, n, first_at, first_value, last_at, last_value)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (subject_id, indicator_id) DO UPDATE SET
                n = n + excluded.n,
                first_value = CASE WHEN excluded.first_at < first_at THEN excluded.first_value ELSE first_value END,
                first_at = min(first_at, excluded.first_at),
                last_value = CASE WHEN excluded.last_at > last_at THEN excluded.last_value ELSE last_value END,
                last_at = max(last_at, excluded.last_at)
            """)
        for subject in subjects {
            for (indicator, s) in subject.indicators.entries.sorted(by: { $0.key < $1.key }) {
                upsertSubjectIndicator.bind(1, subject.id)
                upsertSubjectIndicator.bind(2, indicator)
                upsertSubjectIndicator.bind(3, s.n)
                upsertSubjectIndicator.bind(4, s.firstAt)
                upsertSubjectIndicator.bind(5, s.firstValue)
                upsertSubjectIndicator.bind(6, s.lastAt)
                upsertSubjectIndicator.bind(7, s.lastValue)
                try upsertSubjectIndicator.run()
            }
        }
    }

    /// Each subject's first times and activity roll-up (`subject`).
    private func writeSubjectChanges(_ subjects: [SubjectAggregate]) throws {
        // First times and the activity roll-up, one UPDATE per subject. The roll-up is read from
        // the row inside this transaction (not cached), so that another process writing to the
        // store (quarantine replay) is never overwritten.
        let readActivity = try FastStatement(db, """
            SELECT last_measure_at, activity_lo, activity_hi FROM subject WHERE id = ?
            """)
        let updateSubject = try FastStatement(db, """
            UPDATE subject SET
                first_at = min(first_at, coalesce(?1, first_at)),
                first_measure_at = CASE WHEN ?2 IS NULL THEN first_measure_at
                                        ELSE min(coalesce(first_measure_at, ?2), ?2) END,
                last_measure_at = coalesce(?4, last_measure_at),
                activity_lo = coalesce(?5, activity_lo),
                activity_hi = coalesce(?6, activity_hi)
            WHERE id = ?3
            """)
        for subject in subjects {
            guard let change = subject.change else { continue }
            let id = subject.id
            var mask: ActivityMask?
            if !change.measures.isEmpty {
                readActivity.bind(1, id)
                try readActivity.forEachRow { row in
                    mask = ActivityMask(lastAt: row.optionalInt64(0), lo: UInt64(bitPattern: row.int64(1)),
                                        hi: UInt64(bitPattern: row.int64(2)))
                }
                for at in change.measures { mask?.add(at: at) }
            }
            updateSubject.bind(1, change.firstAt)
            updateSubject.bind(2, change.firstMeasureAt)
            updateSubject.bind(3, id)
            updateSubject.bind(4, mask?.lastAt)
            updateSubject.bind(5, mask.map { Int64(bitPattern: $0.lo) })
            updateSubject.bind(6, mask.map { Int64(bitPattern: $0.hi) })
            try updateSubject.run()
        }
    }

    /// The enrolment and withdrawal times of the subjects that got an `enrolled` or `withdrawn` event.
    private func recomputeEnrolment() throws {
        guard !enrolmentToRecompute.isEmpty else { return }
        let enrolled = try existingIndicatorID(Catalogue.requiredEvents[0]) ?? -1
        let withdrawn = try existingIndicatorID(Catalogue.requiredEvents[1]) ?? -1
        let recompute = try db.cachedStatement(sql: """
            UPDATE subject SET
                enrolled_at = (SELECT min(at) FROM event WHERE subject_id = ?1 AND indicator_id = ?2),
                withdrawn_at = (SELECT min(at) FROM event WHERE subject_id = ?1 AND indicator_id = ?3
                                AND at > (SELECT min(at) FROM event WHERE subject_id = ?1 AND indicator_id = ?2))
            WHERE id = ?1
            """)
        for id in enrolmentToRecompute.sorted() {
            try recompute.execute(arguments: [id, enrolled, withdrawn])
        }
    }

    /// Each pilot's latest observation time (`pilot`).
    private func writePilotLastObservations() throws {
        let updatePilot = try db.cachedStatement(sql: """
            UPDATE pilot SET last_observation_at = max(coalesce(last_observation_at, ?1), ?1) WHERE id = ?2
            """)
        for (id, at) in pilotLastObservation.entries {
            try updatePilot.execute(arguments: [at, id])
        }
    }

    /// Each device's times and counters, and its latest status (`device`).
    private func writeDevices() throws {
        let updateDevice = try FastStatement(db, """
            UPDATE device SET
                first_seen = min(first_seen, ?), last_seen = max(last_seen, ?),
                messages = messages + ?, duplicates = duplicates + ?, refused = refused + ?,
                statuses = statuses + ?, observations = observations + ?
            WHERE id = ?
            """)
        let updateStatus = try db.cachedStatement(sql: """
            UPDATE device SET
                status_state = ?1, status_at = ?2, status_received_at = ?6,
                battery_pct = coalesce(?3, battery_pct), firmware = coalesce(?4, firmware)
            WHERE id = ?5 AND (status_received_at IS NULL OR status_received_at <= ?6)
            """)
        for (id, d) in devices.sorted(by: { $0.key < $1.key }) {
            updateDevice.bind(1, d.firstSeen)
            updateDevice.bind(2, d.lastSeen)
            updateDevice.bind(3, d.messages)
            updateDevice.bind(4, d.duplicates)
            updateDevice.bind(5, d.refused)
            updateDevice.bind(6, d.statuses)
            updateDevice.bind(7, d.observations)
            updateDevice.bind(8, id)
            try updateDevice.run()
            if let s = d.status {
                try updateStatus.execute(arguments: [s.state, s.at, s.battery, s.firmware, id, s.receivedAt])
            }
        }
    }

    /// Each pilot's counters by day received (`pilot_day`).
    private func writePilotDays() throws {
        // Counter deltas may be negative (replay moves a refusal), and SQLite checks CHECK
        // constraints on the row an upsert would insert before it finds the conflict: so update
        // the existing row, and insert only when there is none.
        let updatePilotDay = try db.cachedStatement(sql: """
            UPDATE pilot_day SET
                accepted = accepted + ?, duplicate = duplicate + ?, refused = refused + ?, statuses = statuses + ?,
                observations = observations + ?, duplicate_observations = duplicate_observations + ?
            WHERE pilot_id = ? AND day = ?
            """)
        let insertPilotDay = try db.cachedStatement(sql: """
            INSERT INTO pilot_day (accepted, duplicate, refused, statuses, observations, duplicate_observations,
                                   pilot_id, day)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (key, c) in pilotDays.entries {
            let arguments: StatementArguments = [c.accepted, c.duplicate, c.refused, c.statuses, c.observations,
                                                 c.duplicateObservations, key.pilot, key.day]
            try updatePilotDay.execute(arguments: arguments)
            if db.changesCount == 0 { try insertPilotDay.execute(arguments: arguments) }
        }
    }

    /// The refusals of each pilot, day and reason (`refusal_day`).
    private func writeRefusalDays() throws {
        let updateRefusal = try db.cachedStatement(sql: """
            UPDATE refusal_day SET n = n + ? WHERE pilot_id = ? AND day = ? AND reason = ?
            """)
        let insertRefusal = try db.cachedStatement(sql: """
            INSERT INTO refusal_day (n, pilot_id, day, reason) VALUES (?, ?, ?, ?)
            """)
        for (key, n) in refusals where n != 0 {
            let arguments: StatementArguments = [n, key.pilot, key.day, key.reason.rawValue]
            try updateRefusal.execute(arguments: arguments)
            if db.changesCount == 0 { try insertRefusal.execute(arguments: arguments) }
        }
    }

    /// The store-wide counters (`ingest_total`).
    private func writeTotals() throws {
        try db.cachedStatement(sql: """
            UPDATE ingest_total SET
                accepted = accepted + ?, duplicate = duplicate + ?, refused = refused + ?, statuses = statuses + ?,
                observations = observations + ?, duplicate_observations = duplicate_observations + ?
            WHERE id = 1
            """).execute(arguments: [totals.accepted, totals.duplicate, totals.refused, totals.statuses,
                                     totals.observations, totals.duplicateObservations])
    }
}
