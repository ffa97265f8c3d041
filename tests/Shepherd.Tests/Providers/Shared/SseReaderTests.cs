namespace Shepherd.Tests.Providers.Shared;

using System.Text;
using Shepherd.Providers.Shared;

public sealed class SseReaderTests
{
    private static async Task<List<(string Name, string Data)>> ReadAllAsync(string text, int chunkSize = int.MaxValue, int initialBuffer = 8192)
    {
        using var stream = new ChunkedStream(Encoding.UTF8.GetBytes(text), chunkSize);
        using var reader = new SseReader(stream, initialBuffer: initialBuffer);
        var events = new List<(string, string)>();
        while (await reader.ReadEventAsync(CancellationToken.None))
        {
            events.Add((Encoding.UTF8.GetString(reader.EventName.Span), Encoding.UTF8.GetString(reader.Data.Span)));
        }

        return events;
    }

    [Theory]
    [InlineData("data: one\n\ndata: two\n\n")]
    [InlineData("data: one\r\n\r\ndata: two\r\n\r\n")]
    [InlineData("data: one\r\n\ndata: two\n\r\n")]
    [InlineData("data:one\n\ndata:two\n\n")]
    public async Task ReadEventAsync_LineEndings_EventsSplitOnBlankLines(string text)
    {
        var events = await ReadAllAsync(text);

        Assert.Equal(["one", "two"], events.Select(e => e.Data));
    }

    [Fact]
    public async Task ReadEventAsync_Comments_AreIgnored()
    {
        var events = await ReadAllAsync(": keep-alive\n\n: another\ndata: x\n: inside\n\n:\n\n");

        Assert.Equal(["x"], events.Select(e => e.Data));
    }

    [Fact]
    public async Task ReadEventAsync_MultipleDataLines_JoinedWithNewline()
    {
        var events = await ReadAllAsync("data: a\ndata: b\r\ndata:c\n\ndata: single\n\ndata: d\ndata: e\n\n");

        Assert.Equal(["a\nb\nc", "single", "d\ne"], events.Select(e => e.Data));
    }

    [Fact]
    public async Task ReadEventAsync_OnlyOneSpaceAfterColonStripped()
    {
        var events = await ReadAllAsync("data:  two spaces\n\n");

        Assert.Equal(" two spaces", events.Single().Data);
    }

    [Fact]
    public async Task ReadEventAsync_EventNames_AreReported()
    {
        var events = await ReadAllAsync("event: message_start\ndata: {\"a\":1}\n\nevent: ping\r\ndata: {}\r\n\r\ndata: plain\n\n");

        Assert.Equal([("message_start", "{\"a\":1}"), ("ping", "{}"), ("", "plain")], events);
    }

    [Fact]
    public async Task ReadEventAsync_EventWithoutData_IsSkipped()
    {
        var events = await ReadAllAsync("event: ping\n\nid: 7\nretry: 100\n\ndata: x\n\n");

        Assert.Equal([("", "x")], events);
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public async Task ReadEventAsync_OneByteReads_SameEventsAsOneRead(string newline)
    {
        var text = $": c{newline}event: e{newline}data: {{\"x\":\"héllo\"}}{newline}data: more{newline}{newline}data: second{newline}{newline}";

        var whole = await ReadAllAsync(text);
        var bytewise = await ReadAllAsync(text, chunkSize: 1);

        Assert.Equal([("e", "{\"x\":\"héllo\"}\nmore"), ("", "second")], whole);
        Assert.Equal(whole, bytewise);
    }

    [Fact]
    public async Task ReadEventAsync_EventLargerThanInitialBuffer_IsReadWhole()
    {
        var big = new string('x', 300_000);
        var multi = string.Join("\n", Enumerable.Range(0, 50).Select(i => "data: " + new string((char)('a' + (i % 26)), 5000)));
        var text = $"data: small\n\ndata: {big}\n\n{multi}\n\ndata: after\n\n";

        var events = await ReadAllAsync(text, chunkSize: 4096, initialBuffer: 256);

        Assert.Equal(4, events.Count);
        Assert.Equal("small", events[0].Data);
        Assert.Equal(big, events[1].Data);
        Assert.Equal(string.Join("\n", Enumerable.Range(0, 50).Select(i => new string((char)('a' + (i % 26)), 5000))), events[2].Data);
        Assert.Equal("after", events[3].Data);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(100)]
    [InlineData(700)]
    [InlineData(4096)]
    public async Task ReadEventAsync_ManyEventsThroughASmallBuffer_NoneLostOrTorn(int chunkSize)
    {
        // Events of varying sizes around the buffer's size, so partial events are moved to the front at every offset.
        var expected = Enumerable.Range(0, 200).Select(i => new string((char)('a' + (i % 26)), 1 + (i * 37 % 400))).ToList();
        var text = string.Concat(expected.Select(e => $"data: {e}\n\n"));

        var events = await ReadAllAsync(text, chunkSize, initialBuffer: 256);

        Assert.Equal(expected, events.Select(e => e.Data));
    }

    [Theory]
    [InlineData("data: one\n\ndata: last")]
    [InlineData("data: one\n\ndata: last\n")]
    [InlineData("data: one\r\n\r\ndata: last\r\n")]
    public async Task ReadEventAsync_FinalEventWithoutBlankLine_StillReturned(string text)
    {
        var events = await ReadAllAsync(text);
        var bytewise = await ReadAllAsync(text, chunkSize: 1);

        Assert.Equal(["one", "last"], events.Select(e => e.Data));
        Assert.Equal(events, bytewise);
    }

    [Fact]
    public async Task ReadEventAsync_LeadingBlankLines_Ignored()
    {
        var events = await ReadAllAsync("\n\r\n\ndata: x\n\n\n\ndata: y\n\n");

        Assert.Equal(["x", "y"], events.Select(e => e.Data));
    }

    [Fact]
    public async Task ReadEventAsync_EmptyBody_ReturnsFalse()
    {
        Assert.Empty(await ReadAllAsync(string.Empty));
    }

    [Fact]
    public async Task BytesReceived_CountsEveryByte()
    {
        var bytes = Encoding.UTF8.GetBytes("data: a\n\n: comment\n\n");
        using var reader = new SseReader(new ChunkedStream(bytes, 3));
        while (await reader.ReadEventAsync(CancellationToken.None))
        {
        }

        Assert.Equal(bytes.Length, reader.BytesReceived);
    }

    [Fact]
    public async Task HasBufferedEvent_TrueWhenNextEventAlreadyRead()
    {
        using var reader = new SseReader(new ChunkedStream("data: a\n\ndata: b\n\n"u8.ToArray(), int.MaxValue));

        Assert.True(await reader.ReadEventAsync(CancellationToken.None));
        Assert.True(reader.HasBufferedEvent);
        Assert.True(await reader.ReadEventAsync(CancellationToken.None));
        Assert.False(reader.HasBufferedEvent);
    }

    /// <summary>A read-only stream handing out at most <c>chunkSize</c> bytes per read, as a slow network does.</summary>
    [Fact]
    public async Task ReadEventAsync_NothingBuffered_WaitsWithAZeroByteReadAndAPartialEventWithARealOne()
    {
        // A stream that waits long between events (a model thinking, a held stream) holds no read buffer meanwhile.
        var pipe = new System.IO.Pipelines.Pipe();
        var stream = new RecordingStream(pipe.Reader.AsStream());
        using var reader = new SseReader(stream);

        var first = reader.ReadEventAsync(CancellationToken.None).AsTask();
        Assert.False(first.IsCompleted);
        Assert.Equal(0, stream.PendingReadLength);
        await pipe.Writer.WriteAsync("data: one\n\ndata: tw"u8.ToArray());
        Assert.True(await first);
        Assert.Equal("one", Encoding.UTF8.GetString(reader.Data.Span));

        var second = reader.ReadEventAsync(CancellationToken.None).AsTask();
        Assert.False(second.IsCompleted);
        Assert.True(stream.PendingReadLength > 0);
        await pipe.Writer.WriteAsync("o\n\n"u8.ToArray());
        Assert.True(await second);
        Assert.Equal("two", Encoding.UTF8.GetString(reader.Data.Span));

        await pipe.Writer.CompleteAsync();
        Assert.False(await reader.ReadEventAsync(CancellationToken.None));
    }

    /// <summary>Passes reads through, remembering the size of the buffer a read still waiting was given.</summary>
    private sealed class RecordingStream(Stream inner) : Stream
    {
        public int? PendingReadLength { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            PendingReadLength = buffer.Length;
            var read = await inner.ReadAsync(buffer, cancellationToken);
            PendingReadLength = null;
            return read;
        }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class ChunkedStream(byte[] data, int chunkSize) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = Math.Min(Math.Min(chunkSize, buffer.Length), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
