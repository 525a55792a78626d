// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/routing-kit", from: "4.9.3"),
    ],
    targets: [
        // libwebsockets + libev through pkg-config, with a shim header for the macros Swift cannot import.
        .systemLibrary(name: "CLibwebsockets", pkgConfig: "libwebsockets",
                       providers: [.apt(["libwebsockets-dev", "libev-dev", "libssl-dev"])]),
        // Transport: the only module that touches libwebsockets.
        .target(name: "Signal",
                dependencies: ["CLibwebsockets", .product(name: "HTTPTypes", package: "swift-http-types"),
                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // Users × devices, presence states, grace periods, subscriptions: pure Swift, no I/O.
        .target(name: "Presence", swiftSettings: strict),
        // Calls, membership, relay routing, chat, typing, the wire messages: pure Swift, no I/O.
        .target(name: "Rooms", dependencies: ["Presence"], swiftSettings: strict),
        // Persistence behind one protocol; SQLite (GRDB) implementation.
        .target(name: "Store",
                dependencies: ["Rooms", .product(name: "GRDB", package: "GRDB.swift")],
                swiftSettings: strict),
        // OpenSSL's libcrypto (already linked by libwebsockets): HMAC, scrypt, random bytes.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // HTTP routes, validation, auth (JWT, refresh rotation, password hashing), conventions.
        .target(name: "RestBridge",
                dependencies: ["Store", "Rooms", "COpenSSL", .product(name: "HTTPTypes", package: "swift-http-types"),
                               .product(name: "RoutingKit", package: "routing-kit"),
                               .product(name: "Logging", package: "swift-log")],
                resources: [.copy("Public")],
                swiftSettings: strict),
        // Wiring: sessions on the service thread, dispatch from Signal to Rooms, store hand-off.
        .target(name: "Gateway",
                dependencies: ["Signal", "Rooms", "Presence", "Store", "RestBridge",
                               .product(name: "HTTPTypes", package: "swift-http-types"),
                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .executableTarget(name: "switchboard",
                          dependencies: ["Gateway", "RestBridge", "Store", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log")],
                          swiftSettings: strict),
        .testTarget(name: "RoomsTests", dependencies: ["Rooms"]),
        .testTarget(name: "PresenceTests", dependencies: ["Presence"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Rooms"]),
        .testTarget(name: "RestBridgeTests", dependencies: ["RestBridge"]),
    ]
)
