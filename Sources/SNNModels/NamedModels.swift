/// The reference's named models and their topology strings (main.py of the TRT code).
public enum NamedModel: String, CaseIterable, Sendable {
    case resnet19 = "ResNet-19"
    case vggsnn = "VGGSNN"
    case resnet34 = "ResNet-34"
    case sewResnet34 = "SEW-ResNet-34"

    private static func res(_ prefix: String, _ c: Int, stride2: Bool) -> String {
        "\(prefix)-\(c)-3=3-\(stride2 ? "2=1" : "1=1")-1=1"
    }

    /// Residual stages: (channels, blocks); the first block of every stage but the first strides 2.
    private static func stages(_ prefix: String, _ spec: [(Int, Int)], firstStrided: Bool) -> [String] {
        spec.enumerated().flatMap { s, stage in
            (0..<stage.1).map { b in res(prefix, stage.0, stride2: b == 0 && (s > 0 || firstStrided)) }
        }
    }

    /// The topology string for `classes` outputs.
    public func topology(classes: Int) -> String {
        switch self {
        case .resnet19:
            return (["CONVNP-64-3-1-1"] + NamedModel.stages("RES", [(128, 3), (256, 3), (512, 2)], firstStrided: false)
                    + ["FC-256", "L-\(classes)"]).joined(separator: "_")
        case .vggsnn:
            return ["CONVNP-64-3-1-1", "CONVAP-128-3-1-1", "CONVNP-256-3-1-1", "CONVAP-256-3-1-1", "CONVNP-512-3-1-1",
                    "CONVAP-512-3-1-1", "CONVNP-512-3-1-1", "CONVAP-512-3-1-1", "L-\(classes)"].joined(separator: "_")
        case .resnet34, .sewResnet34:
            let prefix = self == .resnet34 ? "RES" : "SEWRES~ADD"
            return (["CONV-64-7-2-3-3-2-1"] + NamedModel.stages(prefix, [(64, 3), (128, 4), (256, 6), (512, 3)], firstStrided: false)
                    + ["L-\(classes)"]).joined(separator: "_")
        }
    }
}
