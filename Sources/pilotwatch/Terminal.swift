import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a diagnostic line to stderr (data goes to stdout).
func printError(_ line: String) {
    writeStderr(line + "\n")
}

/// Writes text to stderr without a newline (progress lines).
func writeStderr(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// True when stdout is a terminal and colour is allowed (`NO_COLOR` unset).
var useColour: Bool {
    isatty(STDOUT_FILENO) == 1 && getenv("NO_COLOR") == nil
}
