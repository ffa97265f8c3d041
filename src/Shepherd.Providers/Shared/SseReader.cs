namespace Shepherd.Providers.Shared;

using System.Buffers;

/// <summary>
/// Reads Server-Sent Events from an upstream body, one event at a time, from a pooled buffer.
/// </summary>
/// <remarks>
/// Follows PROTOCOLS.md §0: events end at a blank line; <c>\n</c> and <c>\r\n</c> both end lines; lines starting
/// with <c>:</c> are comments; several <c>data:</c> lines are joined with <c>\n</c>; one space after the colon is
/// stripped. A single-line event (the common case) is returned without copying. Returned memory is valid until
/// the next call.
/// </remarks>
public sealed class SseReader : IDisposable
{
    private const int MaxEventBytes = 16 * 1024 * 1024;

    /// <summary>The buffer is small (it lives as long as the stream); reads get at least this much room when possible.</summary>
    private const int MinReadRoom = 256;

    private readonly Stream _stream;
    private readonly Action? _onRead;
    private readonly int _initialBuffer;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private byte[]? _joined;
    private bool _eof;

    public SseReader(Stream stream, Action? onRead = null, int initialBuffer = 1024)
    {
        _stream = stream;
        _onRead = onRead;
        _initialBuffer = initialBuffer;
        _buffer = ArrayPool<byte>.Shared.Rent(initialBuffer);
    }

    /// <summary>The <c>event:</c> name of the current event (empty when none was given).</summary>
    public ReadOnlyMemory<byte> EventName { get; private set; }

    /// <summary>The joined <c>data:</c> of the current event.</summary>
    public ReadOnlyMemory<byte> Data { get; private set; }

    /// <summary>Bytes received in total, to tell "nothing came" from "something came".</summary>
    public long BytesReceived { get; private set; }

    /// <summary>True when a complete event is already buffered (no read needed for the next one).</summary>
    public bool HasBufferedEvent => FindEventEnd(_buffer.AsSpan(_start, _end - _start), out _, out _);

    /// <summary>Reads the next event with data. Returns false at the end of the body.</summary>
    /// <exception cref="InvalidDataException">An event is larger than 16 MiB.</exception>
    public async ValueTask<bool> ReadEventAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (FindEventEnd(_buffer.AsSpan(_start, _end - _start), out var eventLength, out var separatorLength))
            {
                var eventStart = _start;
                _start += eventLength + separatorLength;
                if (ParseEvent(eventStart, eventLength))
                {
                    return true;
                }

                continue;
            }

            if (_eof)
            {
                // A final event without its blank line still counts (some servers close right after it).
                if (_end > _start)
                {
                    var eventStart = _start;
                    var length = _end - _start;
                    _start = _end;
                    if (ParseEvent(eventStart, length))
                    {
                        return true;
                    }
                }

                return false;
            }

            await FillAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0 && _start == _end)
        {
            _start = _end = 0;
        }

        if (_end == 0)
        {
            // Nothing buffered: wait for the upstream's next bytes without holding a buffer (a zero-byte read), so a
            // stream that waits long between events — a model thinking, a held stream — keeps no read buffer of its
            // own (1 KiB per held stream). Streams that do not wait on a zero-byte read return at once, and the read
            // below does the waiting.
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
            await _stream.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
            _buffer = ArrayPool<byte>.Shared.Rent(_initialBuffer);
        }

        // Move a partial event to the front before the room left is too small for a useful read.
        if (_start > 0 && _buffer.Length - _end < MinReadRoom)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            if (_buffer.Length >= MaxEventBytes)
            {
                throw new InvalidDataException("An upstream stream event is larger than 16 MiB.");
            }

            var bigger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
            Buffer.BlockCopy(_buffer, 0, bigger, 0, _end);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }

        var read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
        if (read == 0)
        {
            _eof = true;
            return;
        }

        _end += read;
        BytesReceived += read;
        _onRead?.Invoke();
    }

    /// <summary>Finds the blank line that ends the first event: <c>\n\n</c>, <c>\r\n\r\n</c> or mixes of them.</summary>
    private static bool FindEventEnd(ReadOnlySpan<byte> span, out int eventLength, out int separatorLength)
    {
        var offset = 0;
        while (true)
        {
            var nl = span[offset..].IndexOf((byte)'\n');
            if (nl < 0)
            {
                eventLength = separatorLength = 0;
                return false;
            }

            var lineEnd = offset + nl; // index of '\n'
            var next = lineEnd + 1;
            if (next < span.Length && span[next] == '\n')
            {
                eventLength = lineEnd;
                separatorLength = 2;
                return true;
            }

            if (next + 1 < span.Length && span[next] == '\r' && span[next + 1] == '\n')
            {
                eventLength = lineEnd;
                separatorLength = 3;
                return true;
            }

            if (lineEnd == 0 || (lineEnd == 1 && span[0] == '\r'))
            {
                // A blank line at the very start: an empty event.
                eventLength = 0;
                separatorLength = lineEnd + 1;
                return true;
            }

            offset = next;
            if (offset >= span.Length)
            {
                eventLength = separatorLength = 0;
                return false;
            }
        }
    }

    private bool ParseEvent(int start, int length)
    {
        var span = _buffer.AsSpan(start, length);
        EventName = ReadOnlyMemory<byte>.Empty;
        Data = ReadOnlyMemory<byte>.Empty;
        var dataLines = 0;
        var firstDataStart = 0;
        var firstDataLength = 0;
        var joinedLength = 0;
        var offset = 0;
        while (offset <= span.Length)
        {
            var rest = span[offset..];
            var nl = rest.IndexOf((byte)'\n');
            var lineLength = nl < 0 ? rest.Length : nl;
            var line = rest[..lineLength];
            if (line.Length > 0 && line[^1] == '\r')
            {
                line = line[..^1];
            }

            if (!line.IsEmpty && line[0] != ':')
            {
                var colon = line.IndexOf((byte)':');
                var field = colon < 0 ? line : line[..colon];
                var valueOffset = colon < 0 ? line.Length : colon + 1;
                if (valueOffset < line.Length && line[valueOffset] == ' ')
                {
                    valueOffset++;
                }

                var absoluteValueStart = start + offset + valueOffset;
                var valueLength = line.Length - valueOffset;
                if (field.SequenceEqual("data"u8))
                {
                    if (dataLines == 0)
                    {
                        firstDataStart = absoluteValueStart;
                        firstDataLength = valueLength;
                    }
                    else
                    {
                        joinedLength = AppendJoined(dataLines == 1 ? firstDataStart : -1, firstDataLength, joinedLength, absoluteValueStart, valueLength);
                    }

                    dataLines++;
                }
                else if (field.SequenceEqual("event"u8))
                {
                    EventName = _buffer.AsMemory(absoluteValueStart, valueLength);
                }
            }

            if (nl < 0)
            {
                break;
            }

            offset += nl + 1;
        }

        if (dataLines == 0)
        {
            return false;
        }

        Data = dataLines == 1 ? _buffer.AsMemory(firstDataStart, firstDataLength) : _joined.AsMemory(0, joinedLength);
        return true;
    }

    private int AppendJoined(int firstStart, int firstLength, int joinedLength, int valueStart, int valueLength)
    {
        var needed = (firstStart >= 0 ? firstLength : joinedLength) + 1 + valueLength;
        if (_joined is null || _joined.Length < needed)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 1024));
            if (_joined is not null)
            {
                Buffer.BlockCopy(_joined, 0, bigger, 0, joinedLength);
                ArrayPool<byte>.Shared.Return(_joined);
            }

            _joined = bigger;
        }

        if (firstStart >= 0)
        {
            Buffer.BlockCopy(_buffer, firstStart, _joined, 0, firstLength);
            joinedLength = firstLength;
        }

        _joined[joinedLength++] = (byte)'\n';
        Buffer.BlockCopy(_buffer, valueStart, _joined, joinedLength, valueLength);
        return joinedLength + valueLength;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (_joined is not null)
        {
            ArrayPool<byte>.Shared.Return(_joined);
            _joined = null;
        }
    }
}
