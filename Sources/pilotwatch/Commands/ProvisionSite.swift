import ArgumentParser
import Foundation
import PilotwatchCore

extension Devices {
    /// `devices provision-site`: the broker account of a site instance (federation.md, "Topic and
    /// accounts").
    struct ProvisionSite: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "provision-site",
            abstract: "Create the broker account of a site instance and print its password once.",
            discussion: """
            A site instance publishes the day-end snapshots of the pilots it reports (registry \
            entries with reporting: aggregates and its site) on {root}/{pilot_id}/{site_id}/agg. \
            Its account is named after the site id (no slash), and the ACL's pattern lines \
            (pattern write {root}/+/%u/agg, pattern read {root}/_cluster/sites/%u/status) let it \
            publish snapshots under its own site id only, and read the status the cluster keeps \
            for it; a device account ({pilot}/{device}) cannot match a snapshot topic. The lines \
            are added to the ACL file if missing, with the pilotwatch account's read of \
            {root}/+/+/agg; both files are replaced atomically, as for devices.

            The password is printed once, on stdout: put it in the site's federation.cluster \
            password_file. An existing account is refused unless --rotate. Reload the broker \
            afterwards (systemctl reload mosquitto).

            Examples:
              pilotwatch devices provision-site --site chu-lille
              pilotwatch devices provision-site --site chu-lille --rotate --password-file ./passwd
            """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("The site id: the `site` of the registry entries it reports.", valueName: "id"))
        var site: String

        @Option(help: ArgumentHelp("mosquitto password file to add the account to (created if missing).", valueName: "file"))
        var passwordFile: String = "/etc/mosquitto/passwd"

        @Option(help: ArgumentHelp("mosquitto ACL file that must grant the site pattern (default: acl beside the password file).", valueName: "file"))
        var aclFile: String?

        @Flag(help: "Give an existing account a new password instead of refusing it.")
        var rotate = false

        @Option(help: ArgumentHelp("The mosquitto_passwd program (default: found on PATH).", valueName: "path"))
        var mosquittoPasswd: String?

        func validate() throws {
            if let rule = SettingRules.siteIDProblem(site) { throw ValidationError("--site \(SettingRules.quoted(site)) \(rule)") }
        }

        func run() throws {
            let ctx = try Context.load(global)
            let pilots = ctx.registry.pilots.filter { $0.site == site }.map(\.id)
            guard !pilots.isEmpty else {
                let sites = Set(ctx.registry.pilots.compactMap(\.site)).sorted()
                throw CLIError("no pilot in \(ctx.service.registryPath) is reported by site \(site); give its entries reporting: aggregates and site: \(site) first (registered sites: \(sites.isEmpty ? "none" : sites.joined(separator: ", ")))",
                               kind: .usage)
            }
            let tool = try MosquittoPasswordFile.findTool(mosquittoPasswd)
            let passwords = MosquittoPasswordFile(path: passwordFile)
            let root = ctx.service.topicRoot
            let acl = DeviceACL(path: aclFile ?? ConfigPath.resolve("acl", against: ConfigPath.folder(of: passwordFile)),
                                topicRoot: root, serviceAccount: ctx.service.broker.username ?? "pilotwatch",
                                patterns: DeviceACL.sitePatterns(root: root), serviceReads: ["\(root)/+/+/agg"])
            let existing = try passwords.usernames()
            if existing.contains(site) && !rotate {
                throw CLIError("the account \(site) already exists in \(passwordFile); pass --rotate to give it a new password")
            }
            let aclChange = try acl.plannedChange()
            let password = DeviceAccount.randomPassword()
            try passwords.add([(site, password)], tool: tool)
            print("site \(site): username \(site), password \(password); publishes to \(root)/{\(pilots.joined(separator: ","))}/\(site)/agg")
            printError("\(passwordFile): account \(site) \(existing.contains(site) ? "given a new password" : "added")")
            if let aclChange {
                do {
                    try acl.write(aclChange)
                } catch {
                    throw CLIError("the account above was made, but \(acl.path) could not be updated (\(error)); add these lines to it by hand: \(acl.patterns.joined(separator: "; "))")
                }
                printError("\(acl.path): added the site lines (\(acl.patterns.joined(separator: "; ")))")
            }
            printError("The password is shown once and kept only as a hash: put it in the site's federation.cluster.password_file now.")
            printError("Reload the broker to use it: systemctl reload mosquitto (or kill -HUP its pid).")
        }
    }
}
