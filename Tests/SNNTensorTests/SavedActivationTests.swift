@testable import SNNTensor
import SNNTestSupport
import Testing

/// Spikes saved for a backward pass as one byte per element: the same elements saved by two
/// rules (a residual block's convolution and its shortcut both read the block's input spikes)
/// are cast once and held once.
@Suite("Saved spikes")
struct SavedActivationTests {
    /// `[T, N, C, H, W]` spikes from the LIF scan (marked as spikes by it).
    private func spikes(seed: UInt64) -> Tensor {
        let currents = RandomInputs(seed: seed).normal([2, 3, 4, 5, 5], mean: 0.8, std: 1)
        let s = withoutGradients { SNNTensor.neuronScan(currents, NeuronParameters()) }
        #expect(s.spikeQuantum == 1)
        return s
    }

    @Test("two rules saving the same spikes, one through a reshaped view, share one copy of bytes; each restores the spikes")
    func shared() {
        let x = spikes(seed: 1)
        let a = SavedActivation(x)
        let b = SavedActivation(x.reshaped([6, 4, 5, 5]))
        #expect(a.codesStorage != nil && a.codesStorage === b.codesStorage)
        #expect(a.byteCount == x.count && b.byteCount == x.count)
        #expect(a.value.toDoubles() == x.toDoubles() && b.value.toDoubles() == x.toDoubles())
        #expect(b.value.shape == [6, 4, 5, 5] && b.value.spikeQuantum == 1)
    }

    @Test("other elements of the same storage (a slice, a permuted view) get their own bytes, with their own values")
    func notShared() {
        let x = spikes(seed: 2)
        let whole = SavedActivation(x)
        // Views other than reshapes do not carry the mark; these are spikes all the same.
        let slice = x.reshaped([6, 4, 5, 5]).sliced(axis: 0, 3..<6)
        slice.spikeQuantum = 1
        let sliced = SavedActivation(slice)
        #expect(sliced.codesStorage != nil && sliced.codesStorage !== whole.codesStorage)
        #expect(sliced.value.toDoubles() == slice.toDoubles())
        let permuted = x.reshaped([6, 4, 25]).permuted([0, 2, 1])
        permuted.spikeQuantum = 1
        let turned = SavedActivation(permuted)
        #expect(turned.codesStorage != nil && turned.codesStorage !== whole.codesStorage)
        #expect(turned.value.toDoubles() == permuted.toDoubles())
    }

    @Test("the bytes go when the last rule keeping them goes: a later rule casts afresh")
    func released() {
        let x = spikes(seed: 3)
        weak var first: Storage?
        do {
            let a = SavedActivation(x), b = SavedActivation(x)
            first = a.codesStorage
            #expect(first != nil && b.codesStorage === first)
        }
        #expect(first == nil, "the shared bytes outlived every rule that kept them")
        let c = SavedActivation(x)
        #expect(c.codesStorage != nil && c.value.toDoubles() == x.toDoubles())
    }

    @Test("spikes overwritten in place (assign) are not restored from bytes made of their old values; the mark follows the source")
    func overwritten() {
        let x = spikes(seed: 5)
        let before = x.toDoubles()
        let a = SavedActivation(x)
        let next = spikes(seed: 6)
        x.assign(next)
        #expect(x.spikeQuantum == 1)
        let b = SavedActivation(x)
        #expect(b.codesStorage !== a.codesStorage)
        #expect(a.value.toDoubles() == before && b.value.toDoubles() == next.toDoubles() && before != next.toDoubles())
        x.assign(Tensor(doubles: [Double](repeating: 0.5, count: x.count), shape: x.shape))
        #expect(x.spikeQuantum == nil)
    }

    @Test("a residual block's convolution and shortcut on the same spikes: the weights' gradients equal those from a plain float copy")
    func residualGradients() {
        let x = spikes(seed: 4).reshaped([6, 4, 5, 5])
        let r = RandomInputs(seed: 9)
        let (w1, w2, g) = (r.normal([3, 4, 3, 3], std: 0.3), r.normal([3, 4, 1, 1], std: 0.3), r.normal([6, 3, 3, 3]))
        w1.requiresGrad = true
        w2.requiresGrad = true
        func gradients(_ input: Tensor) -> [[Double]] {
            w1.grad = nil
            w2.grad = nil
            let y = SNNTensor.conv2d(input, weight: w1, stride: (2, 2), padding: (1, 1)) + SNNTensor.conv2d(input, weight: w2, stride: (2, 2))
            (y * g).sum().backward()
            return [w1.grad?.toDoubles() ?? [], w2.grad?.toDoubles() ?? []]
        }
        let plain = Tensor(doubles: x.toDoubles(), shape: x.shape)
        #expect(plain.spikeQuantum == nil)
        #expect(gradients(x) == gradients(plain))
    }
}
