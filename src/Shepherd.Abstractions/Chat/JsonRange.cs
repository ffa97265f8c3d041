namespace Shepherd.Chat;

/// <summary>A byte range inside a request body: where one JSON value starts and how long it is.</summary>
/// <remarks>Ranges let the OpenAI pass-through splice a body (rewrite the model, add stream options)
/// without re-serialising it, and let translators find a field without a second parse.</remarks>
public readonly record struct JsonRange(int Start, int Length)
{
    public static readonly JsonRange None = new(-1, 0);

    public bool IsPresent => Start >= 0;

    public int End => Start + Length;

    public ReadOnlyMemory<byte> Slice(ReadOnlyMemory<byte> body) => IsPresent ? body.Slice(Start, Length) : ReadOnlyMemory<byte>.Empty;
}
