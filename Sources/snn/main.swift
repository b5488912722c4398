import SNNCPU
import SNNTensor

CPUBackend.register()
let x = Tensor([1, -2, 3, 4], shape: [2, 2])
x.requiresGrad = true
let y = (x * x).sum()
y.backward()
print(y, x.grad!)
let s = neuronScan(Tensor([0.5, 0.7, 1.2, 0.1, 2, 0.3], shape: [3, 2]), NeuronParameters())
print(s)
