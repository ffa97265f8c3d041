namespace Shepherd.Benchmarks;

using System.IO.Pipelines;
using System.Text;
using BenchmarkDotNet.Attributes;
using Shepherd.Chat;
using Shepherd.Providers.OpenAI;
using Shepherd.Providers.Shared;
using Shepherd.Security;
using Shepherd.Server.Streaming;

/// <summary>The per-request work of the OpenAI pass-through, step by step, with allocations.</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class HotPathBenchmarks
{
    private static readonly byte[] Body = Encoding.UTF8.GetBytes(
        """{"model":"gpt-4.1","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":64,"temperature":0.2}""");

    private static readonly byte[] StreamBody = Encoding.UTF8.GetBytes(
        """{"model":"gpt-4.1","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":64,"temperature":0.2}""");

    private static readonly byte[] Chunk = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4.1","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}""");

    private static readonly byte[] Completion = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-bench","object":"chat.completion","created":1760000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":12,"total_tokens":24,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}""");

    private static readonly byte[] ModelJson = Encoding.UTF8.GetBytes("\"gpt-4.1-2025-04-14\"");

    private readonly MasterKey _masterKey = new("sk-bench-master-key-0123456789", generated: false);
    private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 0));
    private ChatRequest _request = null!;
    private ChatRequest _streamRequest = null!;
    private readonly Microsoft.AspNetCore.Http.DefaultHttpContext _context = new();

    [GlobalSetup]
    public void Setup()
    {
        _request = ChatRequestParser.Parse(Body, out _)!;
        _streamRequest = ChatRequestParser.Parse(StreamBody, out _)!;

        // What an OpenAI SDK sends.
        var request = _context.Request;
        request.Method = "POST";
        request.Path = "/v1/chat/completions";
        foreach (var (name, value) in new[]
        {
            ("Host", "127.0.0.1:8080"), ("Authorization", "Bearer sk-bench-master-key-0123456789"), ("Content-Type", "application/json"),
            ("Content-Length", "120"), ("Accept", "application/json"), ("User-Agent", "OpenAI/.NET 2.2.0"), ("x-stainless-lang", "dotnet"),
            ("x-stainless-retry-count", "0"),
        })
        {
            request.Headers[name] = value;
        }
    }

    [Benchmark(Description = "parse + validate request")]
    public ChatRequest? Parse() => ChatRequestParser.Parse(Body, out _);

    [Benchmark(Description = "rewrite body for upstream")]
    public int Rewrite()
    {
        using var buffer = new PooledBuffer(Body.Length + 256);
        OpenAIRequestRewriter.Write(_request, ModelJson, developerAsSystem: false, buffer);
        return buffer.Length;
    }

    [Benchmark(Description = "rewrite streamed body (+stream_options)")]
    public int RewriteStream()
    {
        using var buffer = new PooledBuffer(StreamBody.Length + 256);
        OpenAIRequestRewriter.Write(_streamRequest, ModelJson, developerAsSystem: false, buffer);
        return buffer.Length;
    }

    [Benchmark(Description = "inspect completion (usage)")]
    public int InspectCompletion() => OpenAIWire.InspectCompletion(Completion).Usage?.TotalTokens ?? 0;

    [Benchmark(Description = "inspect stream chunk")]
    public bool InspectChunk() => OpenAIWire.InspectChunk(Chunk).HasContent;

    [Benchmark(Description = "write SSE event")]
    public async Task WriteSse()
    {
        SseWriter.WriteData(_pipe.Writer, Chunk);
        await _pipe.Writer.FlushAsync();
        var read = await _pipe.Reader.ReadAsync();
        _pipe.Reader.AdvanceTo(read.Buffer.End);
    }

    [Benchmark(Description = "request head limits (8 headers)")]
    public bool HeadLimits() => Shepherd.Server.Http.RequestHeadLimits.Check(_context) is null;

    [Benchmark(Description = "authenticate master key")]
    public bool Authenticate() => _masterKey.Matches("sk-bench-master-key-0123456789");
}
