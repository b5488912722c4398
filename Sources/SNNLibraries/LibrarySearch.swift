import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where a library that `snn` opens at run time may be, in order, kept with what each place
/// was so that a library found nowhere can be reported with every place tried.
///
/// Python wheels are one such place: NVIDIA ships NCCL, NVRTC, cuBLAS and cuDNN as PyPI
/// packages that install under `site-packages/nvidia/`, and machines with PyTorch have them.
/// Python is not run to find its environments: it may be absent, or another Python than the
/// job's. The environments looked in are listed by ``pythonSitePackages(environment:)``.
public enum LibrarySearch {
    /// One place a library may be: a file to open (or a name for the loader), or a pattern that
    /// matched nothing, kept for the message.
    public struct Place: CustomStringConvertible, Equatable, Sendable {
        /// What to pass to `dlopen`; nil when the place holds no such file.
        public let file: String?
        public let description: String

        public init(file: String?, description: String) {
            (self.file, self.description) = (file, description)
        }

        /// A bare name, for the loader's own search (`LD_LIBRARY_PATH`, the ld.so cache).
        public static func loader(_ name: String) -> Place { Place(file: name, description: "\(name) (loader path)") }

        /// A path, kept whether or not the file exists (a missing one has no `file`).
        public static func path(_ path: String) -> Place {
            Place(file: FileManager.default.fileExists(atPath: path) ? path : nil, description: path)
        }
    }

    /// Opens the first place that loads (`dlopen`, `RTLD_NOW | RTLD_GLOBAL`).
    ///
    /// - Returns: its handle and file, or nil; `tried` lists every place looked at, for the
    ///   message that says where the library was looked for.
    public static func open(_ places: [Place]) -> (opened: (handle: UnsafeMutableRawPointer, file: String)?, tried: [String]) {
        var tried: [String] = []
        for place in places {
            tried.append(place.description)
            if let file = place.file, let handle = dlopen(file, RTLD_NOW | RTLD_GLOBAL) { return ((handle, file), tried) }
        }
        return (nil, tried)
    }

    /// `<site>/<relative>` for each Python site directory of ``pythonSitePackages(environment:)``
    /// and each relative path, in that order (a directory pattern that matched no Python appears
    /// once per path, as a pattern).
    public static func wheelPlaces(_ relativePaths: [String], environment: [String: String]) -> [Place] {
        var places: [Place] = []
        for site in pythonSitePackages(environment: environment) {
            for relative in relativePaths {
                if let directory = site.directory {
                    places.append(.path("\(directory)/\(relative)"))
                } else {
                    places.append(Place(file: nil, description: "\(site.pattern)/\(relative)"))
                }
            }
        }
        return places
    }

    /// A Python site directory, or the pattern of one where no Python matched.
    public struct SiteDirectory: Sendable {
        public let directory: String?
        public let pattern: String
    }

    /// Python site directories, the environment in use first: `$VIRTUAL_ENV` and `$CONDA_PREFIX`,
    /// then the environment of the first `python3` on `PATH` (a virtual environment used without
    /// activating it), `~/.local`, pyenv's Pythons (`$PYENV_ROOT` or `~/.pyenv`, whose `python3`
    /// on `PATH` is a shim script), `/usr/local/lib/python3*/dist-packages` and
    /// `/usr/lib/python3/dist-packages`. Each `lib/python3*` directory found is listed, newest
    /// first; duplicates are dropped.
    public static func pythonSitePackages(environment: [String: String]) -> [SiteDirectory] {
        var patterns: [(parent: String, leaf: String)] = []
        for variable in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
            if let prefix = environment[variable], !prefix.isEmpty { patterns.append(("\(prefix)/lib", "site-packages")) }
        }
        if let prefix = pythonPrefixOnPath(environment: environment) { patterns.append(("\(prefix)/lib", "site-packages")) }
        if let home = environment["HOME"], !home.isEmpty { patterns.append(("\(home)/.local/lib", "site-packages")) }
        for prefix in pyenvPrefixes(environment: environment) { patterns.append(("\(prefix)/lib", "site-packages")) }
        patterns.append(("/usr/local/lib", "dist-packages"))
        var sites: [SiteDirectory] = []
        var seen = Set<String>()
        for (parent, leaf) in patterns where seen.insert(parent).inserted {
            let versions = pythonDirectories(in: parent)
            let pattern = "\(parent)/python3*/\(leaf)"
            if versions.isEmpty { sites.append(SiteDirectory(directory: nil, pattern: pattern)) }
            for version in versions {
                sites.append(SiteDirectory(directory: "\(parent)/\(version)/\(leaf)", pattern: pattern))
            }
        }
        sites.append(SiteDirectory(directory: "/usr/lib/python3/dist-packages", pattern: "/usr/lib/python3/dist-packages"))
        return sites
    }

    /// The prefix of the first `python3` on `PATH` when it is not the system's (`/usr/bin`,
    /// `/bin`, `/usr/local/bin`): `/opt/torch/.venv` for `/opt/torch/.venv/bin/python3`.
    static func pythonPrefixOnPath(environment: [String: String]) -> String? {
        let system: Set<String> = ["/usr/bin", "/bin", "/usr/local/bin"]
        for directory in (environment["PATH"] ?? "").split(separator: ":").map(String.init) where !directory.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: "\(directory)/python3") else { continue }
            guard !system.contains(directory), directory.hasSuffix("/bin") else { return nil }
            return String(directory.dropLast(4))
        }
        return nil
    }

    /// `~/.pyenv/versions/3.12.4`, … (or under `$PYENV_ROOT`), newest first.
    static func pyenvPrefixes(environment: [String: String]) -> [String] {
        let root = environment["PYENV_ROOT"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["HOME"].flatMap { $0.isEmpty ? nil : "\($0)/.pyenv" }
        guard let root else { return [] }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/versions")) ?? []
        return versions.sorted { $0.compare($1, options: .numeric) == .orderedDescending }.map { "\(root)/versions/\($0)" }
    }

    /// `python3.12`, `python3.11`, … under `parent`, newest first.
    static func pythonDirectories(in parent: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        return names.filter { $0.hasPrefix("python3") }.sorted { $0.count != $1.count ? $0.count > $1.count : $0 > $1 }
    }
}
