using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Shepherd.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
