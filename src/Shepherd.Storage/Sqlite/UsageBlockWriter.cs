namespace Shepherd.Storage.Sqlite;

using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Shepherd.Accounting;

/// <summary>
/// Writes a batch's usage records as one JSON array of arrays: what a <c>usage_blocks</c> row holds, one inner array
/// per record with its columns in the order the <c>usage_records</c> view reads them (migration 0005).
/// </summary>
/// <remarks>
/// Written by hand rather than through <see cref="Utf8JsonWriter"/>: a batch is a thousand records of 24 values, and
/// the writer's per-value bookkeeping and double formatting cost more than the SQLite insert they replace. The
/// low-cardinality strings (key, team, models, provider, deployment, error) are encoded once and reused; times and
/// rates are written as integer thousandths (microseconds for times), so no floating-point formatting is needed.
/// </remarks>
internal sealed class UsageBlockWriter
{
    // Printable ASCII that JSON needs no escape for: a string made only of these is copied byte for byte.
    private static readonly SearchValues<char> Plain = SearchValues.Create(
        " !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    private const int MaxCachedTokens = 4096;

    private readonly Dictionary<string, byte[]> _tokens = new(StringComparer.Ordinal);
    private byte[] _buffer = new byte[64 * 1024];
    private int _length;
    private int _records;

    /// <summary>The block so far (complete once <see cref="Finish"/> was called).</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    public void Start()
    {
        _length = 0;
        _records = 0;
        Byte((byte)'[');
    }

    public void Finish() => Byte((byte)']');

    public void Append(UsageRecord record, string recordId, long ts, long cost)
    {
        Ensure(256);
        if (_records++ > 0)
        {
            _buffer[_length++] = (byte)',';
        }

        _buffer[_length++] = (byte)'[';
        Number(ts);
        Unique(recordId);
        if (string.Equals(record.RequestId, recordId, StringComparison.Ordinal))
        {
            Null(); // the usual case: the request id is the record id, stored once
        }
        else
        {
            Unique(record.RequestId);
        }

        Repeated(record.KeyId);
        Repeated(record.Team);
        Repeated(record.RequestedModel);
        Repeated(record.ServedModel);
        Repeated(record.Provider);
        Repeated(record.Deployment);
        Number(record.Attempts);
        Number(record.FallbackUsed ? 1 : 0);
        Number(record.Streamed ? 1 : 0);
        Number(record.Status);
        Repeated(record.ErrorClass);
        Number(record.PromptTokens);
        Number(record.CachedTokens);
        Number(record.CompletionTokens);
        Number(record.ReasoningTokens);
        Number(record.CacheWriteTokens);
        Number(cost);
        Thousandths(record.LatencyMs);
        Thousandths(record.TimeToFirstTokenMs);
        Thousandths(record.OutputTokensPerSecond);
        Number(record.Estimated ? 1 : 0);
        _buffer[_length - 1] = (byte)']'; // replaces the last value's comma
    }

    /// <summary>A value followed by a comma (the record's closing bracket replaces the last one).</summary>
    private void Number(long value)
    {
        Ensure(24);
        value.TryFormat(_buffer.AsSpan(_length), out var written, provider: System.Globalization.CultureInfo.InvariantCulture);
        _length += written;
        _buffer[_length++] = (byte)',';
    }

    /// <summary>Rounded to thousandths and stored as an integer; JSON has no NaN or infinity, so those are null (as SQLite stored them before).</summary>
    private void Thousandths(double? value)
    {
        if (value is { } v && double.IsFinite(v) && Math.Abs(v) < 9e15)
        {
            Number((long)Math.Round(v * 1000, MidpointRounding.AwayFromZero));
        }
        else
        {
            Null();
        }
    }

    private void Null()
    {
        Ensure(5);
        "null,"u8.CopyTo(_buffer.AsSpan(_length));
        _length += 5;
    }

    /// <summary>A value that differs on every record (ids): copied straight when it needs no escaping.</summary>
    private void Unique(string value)
    {
        if (value.AsSpan().ContainsAnyExcept(Plain))
        {
            Token(Encode(value));
            return;
        }

        Ensure(value.Length + 3);
        _buffer[_length++] = (byte)'"';
        _length += Encoding.ASCII.GetBytes(value, _buffer.AsSpan(_length));
        _buffer[_length++] = (byte)'"';
        _buffer[_length++] = (byte)',';
    }

    /// <summary>A value most records share (key, model, provider): encoded once.</summary>
    private void Repeated(string? value)
    {
        if (value is null)
        {
            Null();
            return;
        }

        if (!_tokens.TryGetValue(value, out var token))
        {
            token = Encode(value);
            if (_tokens.Count >= MaxCachedTokens)
            {
                _tokens.Clear();
            }

            _tokens[value] = token;
        }

        Token(token);
    }

    private void Token(byte[] token)
    {
        Ensure(token.Length + 1);
        token.CopyTo(_buffer.AsSpan(_length));
        _length += token.Length;
        _buffer[_length++] = (byte)',';
    }

    private static byte[] Encode(string value)
    {
        var encoded = JsonEncodedText.Encode(value, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes;
        var token = new byte[encoded.Length + 2];
        token[0] = token[^1] = (byte)'"';
        encoded.CopyTo(token.AsSpan(1));
        return token;
    }

    private void Byte(byte value)
    {
        Ensure(1);
        _buffer[_length++] = value;
    }

    private void Ensure(int bytes)
    {
        if (_length + bytes > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + bytes));
        }
    }
}
