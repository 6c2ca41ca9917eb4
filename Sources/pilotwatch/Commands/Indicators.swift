import ArgumentParser
import PilotwatchCore
import PilotwatchReports

struct Indicators: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "indicators",
        abstract: "The indicator catalogue: code, name, LOINC, unit, plausible range, direction, target.",
        discussion: """
        Examples:
          pilotwatch indicators
          pilotwatch indicators --programme diabetes --format csv
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Only the indicators this programme may send.", valueName: "programme"))
    var programme: String?

    @Option(help: ArgumentHelp("Output format: table, json or csv.", valueName: "format"))
    var format: OutputFormat = .table

    func run() throws {
        let ctx = try Context.load(global)
        if let programme, !ctx.registry.programmes.contains(programme) {
            throw CLIError("unknown programme \"\(programme)\"; valid programmes: \(ctx.registry.programmes.joined(separator: ", "))", kind: .usage)
        }
        let view = IndicatorCatalogueView(indicators: Dashboard.indicators(ctx.catalogue, programme: programme))
        switch format {
        case .table: print(view.table(colour: useColour))
        case .json: print(view.json())
        case .csv: print(view.csv())
        }
    }
}
