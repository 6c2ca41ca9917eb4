// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "pilotwatch",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pilotwatch", targets: ["pilotwatch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]
        ),
        .systemLibrary(name: "CSQLiteTuning"),
        .target(
            name: "MQTT",
            dependencies: ["CMosquitto", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "PilotwatchCore",
            dependencies: ["Yams"],
            swiftSettings: strict
        ),
        .target(
            name: "PilotwatchStore",
            dependencies: [
                "PilotwatchCore", "CSQLiteTuning",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "PilotwatchReports",
            dependencies: ["PilotwatchCore", "PilotwatchStore"],
            swiftSettings: strict
        ),
        .target(
            name: "PilotwatchSim",
            dependencies: ["PilotwatchCore", "MQTT", "Yams", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "PilotwatchMonitoring",
            dependencies: [
                "PilotwatchCore", "PilotwatchStore",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "pilotwatch",
            dependencies: [
                "PilotwatchCore", "PilotwatchStore", "PilotwatchReports", "MQTT", "PilotwatchSim", "PilotwatchMonitoring",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TestSupport",
            dependencies: ["PilotwatchCore"],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "PilotwatchCoreTests", dependencies: ["PilotwatchCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "MQTTTests", dependencies: ["MQTT", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "PilotwatchStoreTests", dependencies: ["PilotwatchStore", "PilotwatchCore", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: strict),
        .testTarget(name: "PilotwatchReportsTests", dependencies: ["PilotwatchReports", "PilotwatchStore", "PilotwatchCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "PilotwatchSimTests", dependencies: ["PilotwatchSim", "PilotwatchCore", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "PilotwatchMonitoringTests", dependencies: ["PilotwatchMonitoring", "PilotwatchStore", "PilotwatchCore", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["PilotwatchCore", "PilotwatchStore", "PilotwatchReports", "MQTT", "TestSupport", "pilotwatch"],
            swiftSettings: strict
        ),
    ]
)
