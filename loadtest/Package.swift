// swift-tools-version:6.0
// The Switchboard load generator: its own package, no dependencies, builds in seconds.
//   swift build -c release --package-path loadtest
import PackageDescription

let package = Package(
    name: "loadtest",
    products: [
        .executable(name: "loadtest", targets: ["loadtest"]),
    ],
    targets: [
        // epoll, TCP_NODELAY, setrlimit: headers Glibc's Swift module does not cover.
        .systemLibrary(name: "CSys", path: "Sources/CSys"),
        .executableTarget(name: "loadtest", dependencies: ["CSys"], path: "Sources/loadtest"),
    ]
)
