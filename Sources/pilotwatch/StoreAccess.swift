import Foundation
import PilotwatchCore
import PilotwatchStore

/// Creates the folder that holds the database `path` when it is missing (the store, its lock,
/// socket and inbox live there); a folder that cannot be made is reported by whatever opens a
/// file in it next, with the file's name.
func makeFolder(of path: String) {
    let folder = ConfigPath.folder(of: path)
    if !FileManager.default.fileExists(atPath: folder) {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
}

/// Opens the store, turning failures into a one-line error that names the file.
func openStore(_ path: String, readOnly: Bool = false, cacheSizeMiB: Int = StoreOptions().cacheSizeMiB) throws -> Store {
    if !readOnly {
        makeFolder(of: path)
    } else if !FileManager.default.fileExists(atPath: path) {
        throw CLIError("no database at \(path) yet; run `pilotwatch serve` or `pilotwatch ingest` first, or pass --db FILE")
    }
    do {
        var options = StoreOptions()
        options.readOnly = readOnly
        options.cacheSizeMiB = cacheSizeMiB
        return try Store(path: path, options: options)
    } catch {
        throw CLIError("cannot open the database \(path): \(error)", cause: error)
    }
}
