namespace Shepherd.Benchmarks;

using System.Text;
using BenchmarkDotNet.Attributes;
using Shepherd.Providers.Shared;

/// <summary>Reading an upstream SSE stream of 40 chunks.</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class SseReaderBenchmarks
{
    private byte[] _stream = [];

    [GlobalSetup]
    public void Setup()
    {
        var sb = new StringBuilder();
        for (var i = 0; i < 40; i++)
        {
            sb.Append("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1760000000,\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word \"},\"finish_reason\":null}]}\n\n");
        }

        sb.Append("data: [DONE]\n\n");
        _stream = Encoding.UTF8.GetBytes(sb.ToString());
    }

    [Benchmark(Description = "read 40-chunk SSE stream")]
    public async Task<int> Read()
    {
        using var reader = new SseReader(new MemoryStream(_stream, writable: false));
        var count = 0;
        while (await reader.ReadEventAsync(CancellationToken.None))
        {
            count++;
        }

        return count;
    }
}
