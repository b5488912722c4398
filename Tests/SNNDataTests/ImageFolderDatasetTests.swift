import Foundation
import SNNCPU
import SNNData
import SNNTensor
import Testing

/// JPEG decoding and the ImageNet transforms against PIL and torchvision on real ImageNet files
/// (fixture from scripts/make_jpeg_fixture.py), the class-folder layout, and bad files.
@Suite("JPEG and ImageNet folders")
struct ImageFolderDatasetTests {
    init() { CPUBackend.register() }

    struct Fixture: Decodable {
        struct Crop: Decodable { let top: Int, left: Int, height: Int, width: Int, sample: [Int] }
        struct Case: Decodable {
            let file: String, width: Int, height: Int
            let channel_sums: [Int], decoded_sample: [Int], test_sample: [Int], test_channel_sums: [Int]
            let crops: [Crop]
        }
        let step: Int
        let cases: [Case]
    }

    static let fixture: Fixture = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/jpeg.json")
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    static let imagenette = "\(TestFiles.shared)/imagenet-sample/imagenette-224"

    /// Every `step`-th row and column of interleaved RGB pixels, as the fixture samples them.
    private func sample(_ pixels: [UInt8], width: Int, height: Int, step: Int) -> [Int] {
        var out: [Int] = []
        for y in stride(from: 0, to: height, by: step) {
            for x in stride(from: 0, to: width, by: step) { for c in 0..<3 { out.append(Int(pixels[(y * width + x) * 3 + c])) } }
        }
        return out
    }

    @Test("decoded pixels equal PIL's (grayscale, portrait and 224×224 files)")
    func decodeMatchesPIL() throws {
        for c in Self.fixture.cases {
            let image = try JPEG.read("\(TestFiles.shared)/imagenet-sample/\(c.file)")
            #expect(image.width == c.width && image.height == c.height, "\(c.file)")
            var sums = [0, 0, 0]
            for (i, v) in image.pixels.enumerated() { sums[i % 3] += Int(v) }
            #expect(sums == c.channel_sums, "\(c.file)")
            #expect(sample(image.pixels, width: image.width, height: image.height, step: Self.fixture.step) == c.decoded_sample, "\(c.file)")
        }
    }

    /// At most one 8-bit step apart; returns how many values differ. SwiftSNN resamples as
    /// Pillow's Resample.c does (fixed-point taps, horizontal pass first, each pass rounded to 8
    /// bits), which reproduces PIL exactly; recent Pillow releases run the vertical pass first for
    /// some shapes, which moves about a fifth of the values by one step.
    @discardableResult
    private func expectNear(_ a: [Int], _ b: [Int], _ what: String) -> Int {
        #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) values")
        let diffs = zip(a, b).map { abs($0 - $1) }
        #expect((diffs.max() ?? 0) <= 1, "\(what): max difference \(diffs.max() ?? 0)")
        #expect(diffs.filter { $0 > 0 }.count * 4 <= diffs.count, "\(what): \(diffs.filter { $0 > 0 }.count) of \(diffs.count) differ")
        return diffs.filter { $0 > 0 }.count
    }

    @Test("Resize(256) + CenterCrop(224) and resized crops equal torchvision's on PIL images")
    func transformsMatchTorchvision() throws {
        var (exact, crops) = (0, 0)
        for c in Self.fixture.cases {
            let image = try JPEG.read("\(TestFiles.shared)/imagenet-sample/\(c.file)")
            let r = ImageFolderDataset.resizeThenCenterCrop(width: image.width, height: image.height, shorter: 256, crop: 224)
            let resized = Resize.bilinearRGB(image, crop: (0, 0, image.width, image.height), outWidth: r.width, outHeight: r.height)
            var crop = [UInt8](repeating: 0, count: 224 * 224 * 3)
            for y in 0..<224 {
                let src = ((y + r.y) * r.width + r.x) * 3
                for i in 0..<(224 * 3) { crop[y * 224 * 3 + i] = resized[src + i] }
            }
            #expect(expectNear(sample(crop, width: 224, height: 224, step: Self.fixture.step), c.test_sample, "\(c.file) test transform") == 0)
            var sums = [0, 0, 0]
            for (i, v) in crop.enumerated() { sums[i % 3] += Int(v) }
            for ch in 0..<3 { #expect(abs(sums[ch] - c.test_channel_sums[ch]) <= 224 * 224 / 100, "\(c.file) channel \(ch) sum") }
            for k in c.crops {
                let out = Resize.bilinearRGB(image, crop: (k.left, k.top, k.width, k.height), outWidth: 224, outHeight: 224)
                let differing = expectNear(sample(out, width: 224, height: 224, step: Self.fixture.step), k.sample,
                                           "\(c.file) crop \(k.top),\(k.left) \(k.height)×\(k.width)")
                (exact, crops) = (exact + (differing == 0 ? 1 : 0), crops + 1)
            }
        }
        #expect(exact * 4 >= crops * 3, "\(exact) of \(crops) resized crops equal PIL's exactly")
    }

    @Test("RandomResizedCrop draws: inside the image, area 8-100 %, ratio 3/4-4/3, fallback centred")
    func randomResizedCropParameters() {
        let g = RandomGenerator(seed: 3)
        for i in 0..<500 {
            let u = g.derived(UInt64(i)).uniform(41)
            let (w, h) = (100 + i % 400, 80 + (i * 7) % 300)
            let c = ImageFolderDataset.randomResizedCrop(width: w, height: h, uniforms: u)
            #expect(c.x >= 0 && c.y >= 0 && c.x + c.width <= w && c.y + c.height <= h)
            let area = Double(c.width * c.height) / Double(w * h), ratio = Double(c.width) / Double(c.height)
            #expect(area >= 0.07 && area <= 1.0 && ratio > 0.70 && ratio < 1.42, "\(c) in \(w)×\(h)")
        }
        // Uniforms that never fit (every area draw near 100 % at an extreme ratio) fall back to the
        // centred crop at the nearest allowed ratio, as torchvision does.
        let never = [Float](repeating: 0.999, count: 41)
        let c = ImageFolderDataset.randomResizedCrop(width: 400, height: 100, uniforms: never)
        #expect(c.width == 133 && c.height == 100 && c.x == 133 && c.y == 0)
        #expect(ImageFolderDataset.resizeThenCenterCrop(width: 500, height: 375, shorter: 256, crop: 224) == (341, 256, 58, 16))
    }

    @Test("class folders: --classes all, ImageFolder's order, normalised batches, the same batch on every call")
    func imagenetteFolders() throws {
        let train = try ImageFolderDataset(root: Self.imagenette, train: true, classes: .all, seed: 1)
        let val = try ImageFolderDataset(root: Self.imagenette, train: false, classes: .all, seed: 1)
        #expect(train.count == 500 && val.count == 100 && train.classes == 10 && val.classes == 10)
        #expect(train.classNames.first == "n01440764" && train.classNames.last == "n03888257")
        #expect(train.labels.first == 0 && train.labels.last == 9)
        let b = try val.batch([0, 99], epoch: 0)
        #expect(b.inputs.shape == [2, 3, 224, 224] && b.labels.toDoubles() == [0, 9])
        let x = b.inputs.toFloats()
        // Normalised: values span roughly [-2.1, 2.6].
        #expect(x.min()! >= -2.2 && x.max()! <= 2.7 && x.min()! < -1 && x.max()! > 1)
        let t1 = try train.batch([3, 4], epoch: 2).inputs.toFloats(), t2 = try train.batch([3, 4], epoch: 2).inputs.toFloats()
        #expect(t1 == t2, "augmentation depends only on (seed, epoch, sample)")
        #expect(try train.batch([3, 4], epoch: 3).inputs.toFloats() != t1, "a new epoch draws new crops")
    }

    @Test("ImageNet-100's list is the reference's 100 synsets; missing classes are named")
    func imagenet100List() throws {
        #expect(ImageNet100.synsets.count == 100 && Set(ImageNet100.synsets).count == 100)
        #expect(ImageNet100.synsets.first == "n02869837" && ImageNet100.synsets.last == "n02090622")
        #expect(ImageNet100.synsets.allSatisfy { $0.count == 9 && $0.hasPrefix("n") })
        do {
            _ = try ImageFolderDataset(root: Self.imagenette, train: true, seed: 0)
            Issue.record("expected an error")
        } catch let e as DataLayoutError {
            #expect(e.problem.contains("100 of ImageNet-100's 100 classes") && e.problem.contains("n02869837") && e.path.hasSuffix("/train"))
        }
        do {
            _ = try ImageFolderDataset(root: "/nonexistent/imagenet", train: false, seed: 0)
            Issue.record("expected an error")
        } catch let e as DataLayoutError {
            #expect(e.path == "/nonexistent/imagenet" && e.problem == "no such folder" && e.expected?.contains("train/ and val/") == true)
        }
    }

    @Test("truncated, empty and non-JPEG files: errors naming the file; --skip-corrupt takes the class's next image")
    func badFiles() throws {
        let root = try TestFiles.temporaryRoot("jpeg")
        defer { try? FileManager.default.removeItem(at: root) }
        let good = try Data(contentsOf: URL(fileURLWithPath: "\(Self.imagenette)/val/n01440764/ILSVRC2012_val_00009111.JPEG"))
        let dir = root.appendingPathComponent("val/n01440764")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try good.prefix(good.count / 2).write(to: dir.appendingPathComponent("a_truncated.JPEG"))
        try Data("not a jpeg".utf8).write(to: dir.appendingPathComponent("b_text.jpg"))
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).write(to: dir.appendingPathComponent("c_header.jpeg"))
        try good.write(to: dir.appendingPathComponent("d_good.JPEG"))
        for (name, words) in [("a_truncated.JPEG", "truncated"), ("b_text.jpg", "not a JPEG"), ("c_header.jpeg", "unreadable JPEG header")] {
            do {
                _ = try JPEG.read(dir.appendingPathComponent(name).path)
                Issue.record("\(name): expected an error")
            } catch let e as DataFileError {
                #expect(e.path.hasSuffix(name) && e.reason.contains(words), "\(e)")
            }
        }
        let strict = try ImageFolderDataset(root: root.path, train: false, classes: .all, seed: 0)
        #expect(throws: DataFileError.self) { try strict.batch([0], epoch: 0) }
        let lenient = try ImageFolderDataset(root: root.path, train: false, classes: .all, seed: 0, skipCorrupt: true)
        let b = try lenient.batch([0, 1, 2, 3], epoch: 0)
        let x = b.inputs.toFloats(), n = 3 * 224 * 224
        #expect(Array(x[0..<n]) == Array(x[(3 * n)...]), "a corrupt image is replaced by the class's next readable one")
        #expect(lenient.skipped.count == 3)
    }
}
