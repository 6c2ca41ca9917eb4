import ArgumentParser
import PilotwatchCore
import PilotwatchReports
import PilotwatchStore

struct Subjects: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subjects",
        abstract: "One subject's data: what the store holds (access request), or erase it all (erasure request).",
        subcommands: [Show.self, Erase.self],
        defaultSubcommand: Show.self
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print, as JSON, everything stored about a subject of a pilot.",
            discussion: """
            For a data subject's access request: the subject's dates (first data, first \
            measurement, enrolment, withdrawal, last measurement), every reading and event with \
            its indicator, time, value and device, the devices that carried them, and the pilot's \
            refused messages whose kept payload names the subject (with the payload). Messages \
            refused as identifying data keep no payload, so they cannot be found by pseudonym.

            The request is recorded in the audit trail under the subject's keyed hash (the same \
            one its erasure would record), never the pseudonym itself.

            Example:
              pilotwatch subjects show --pilot resp-copd-idf-01 --subject p-7f3a9c21 > access-request.json
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("The pilot id.", valueName: "id"))
        var pilot: String

        @Option(help: ArgumentHelp("The subject's pseudonym, as the pilot sends it.", valueName: "pseudonym"))
        var subject: String

        func validate() throws {
            try requireCode(pilot, flag: "--pilot", naming: "pilot id")
            guard (1...64).contains(subject.utf8.count) else {
                throw ValidationError("--subject must be a pseudonym of 1 to 64 bytes, as the pilot sends it")
            }
        }

        func run() throws {
            let ctx = try Context.load(global)
            guard ctx.registry.pilot(pilot) != nil else {
                throw CLIError("unknown pilot \"\(pilot)\"; `pilotwatch status` lists the pilots", kind: .usage)
            }
            let name = ErasureWork.auditName(database: ctx.service.databasePath, pilot: pilot, subject: subject)
            try audited("subjects show", database: ctx.service.databasePath, selection: "pilot=\(pilot) \(name)") { audit in
                let report = try openStore(ctx.service.databasePath, readOnly: true).subjectReport(pilot: pilot, subject: subject)
                try audit.show(Self.json(report))
            }
        }

        static func json(_ r: SubjectReport) -> String {
            var w = JSONWriter(pretty: true)
            w.object { o in
                o.field("pilot", r.pilot)
                o.field("subject", r.subject)
                o.field("found", !r.isEmpty)
                o.field("first_at", r.firstAt?.description)
                o.field("first_measurement_at", r.firstMeasureAt?.description)
                o.field("enrolled_at", r.enrolledAt?.description)
                o.field("withdrawn_at", r.withdrawnAt?.description)
                o.field("last_measurement_at", r.lastMeasureAt?.description)
                o.field("devices", strings: r.devices)
                for (name, rows) in [("observations", r.observations), ("events", r.events)] {
                    o.arrayField(name) { a in
                        for row in rows {
                            a.object { e in
                                e.field("indicator", row.indicator)
                                e.field("at", row.at.description)
                                e.field("value", row.value)
                                e.field("device", row.device)
                            }
                        }
                    }
                }
                o.arrayField("refused_messages") { a in
                    for q in r.refusals {
                        a.object { e in
                            e.field("id", Int(q.id))
                            e.field("received_at", q.receivedAt.description)
                            e.field("topic", q.topic)
                            e.field("reason", q.reason.rawValue)
                            e.field("detail", q.detail)
                            e.field("payload_sha256", q.payloadSHA256)
                            e.field("payload", q.payload.map { String(decoding: $0, as: UTF8.self) })
                        }
                    }
                }
            }
            return w.text
        }
    }
}
