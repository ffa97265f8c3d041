namespace Shepherd.Server.Admin;

using System.Globalization;
using System.Text.Json;
using Shepherd.Keys;
using Shepherd.Limits;

/// <summary>Reads admin key requests (strictly: unknown fields and wrong types are errors naming the field) and writes key objects.</summary>
public static class KeyJson
{
    private static readonly HashSet<string> Fields =
    [
        "name", "team", "expires_at", "enabled", "allowed_models", "ip_allowlist", "rpm", "tpm", "max_parallel",
        "daily_budget", "monthly_budget", "total_budget", "credit_balance", "metadata",
    ];

    public static KeyPatch ReadPatch(JsonElement root)
    {
        var errors = new List<FieldError>();
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new KeyValidationException([new FieldError("body", "must be a JSON object")]);
        }

        var patch = new KeyPatch();
        foreach (var property in root.EnumerateObject())
        {
            var name = property.Name;
            var value = property.Value;
            if (!Fields.Contains(name))
            {
                errors.Add(new FieldError(name, "unknown field"));
                continue;
            }

            patch = name switch
            {
                "name" => patch with { Name = new(true, String(value, name, errors)) },
                "team" => patch with { Team = new(true, String(value, name, errors)) },
                "expires_at" => patch with { ExpiresAt = new(true, Time(value, name, errors)) },
                "enabled" => patch with { Enabled = new(true, Bool(value, name, errors)) },
                "allowed_models" => patch with { AllowedModels = new(true, Strings(value, name, errors)) },
                "ip_allowlist" => patch with { IpAllowlist = new(true, Strings(value, name, errors)) },
                "rpm" => patch with { Rpm = new(true, Int(value, name, errors)) },
                "tpm" => patch with { Tpm = new(true, Int(value, name, errors)) },
                "max_parallel" => patch with { MaxParallel = new(true, Int(value, name, errors)) },
                "daily_budget" => patch with { DailyBudget = new(true, Money(value, name, errors)) },
                "monthly_budget" => patch with { MonthlyBudget = new(true, Money(value, name, errors)) },
                "total_budget" => patch with { TotalBudget = new(true, Money(value, name, errors)) },
                "credit_balance" => patch with { CreditBalance = new(true, Money(value, name, errors)) },
                "metadata" => patch with { Metadata = new(true, Map(value, name, errors)) },
                _ => patch,
            };
        }

        if (errors.Count > 0)
        {
            throw new KeyValidationException(errors);
        }

        return patch;
    }

    public static decimal ReadAmount(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("amount", out var amount))
        {
            throw new KeyValidationException([new FieldError("amount", "is required (USD, a positive number)")]);
        }

        var errors = new List<FieldError>();
        var value = Money(amount, "amount", errors);
        if (errors.Count > 0 || value is null)
        {
            throw new KeyValidationException(errors.Count > 0 ? errors : [new FieldError("amount", "is required")]);
        }

        return value.Value;
    }

    private static string? String(JsonElement value, string field, List<FieldError> errors)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            errors.Add(new FieldError(field, "must be a string"));
            return null;
        }

        return value.GetString();
    }

    private static bool Bool(JsonElement value, string field, List<FieldError> errors)
    {
        if (value.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return value.GetBoolean();
        }

        errors.Add(new FieldError(field, "must be true or false"));
        return true;
    }

    private static DateTimeOffset? Time(JsonElement value, string field, List<FieldError> errors)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.String &&
            DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var time))
        {
            return time;
        }

        errors.Add(new FieldError(field, "must be an ISO 8601 date-time (e.g. 2027-01-31T00:00:00Z) or null"));
        return null;
    }

    private static int? Int(JsonElement value, string field, List<FieldError> errors)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number))
        {
            return number;
        }

        errors.Add(new FieldError(field, "must be a whole number or null"));
        return null;
    }

    private static decimal? Money(JsonElement value, string field, List<FieldError> errors)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetDecimal(out var number))
        {
            return number;
        }

        if (value.ValueKind == JsonValueKind.String &&
            decimal.TryParse(value.GetString(), NumberStyles.Number, CultureInfo.InvariantCulture, out var parsed))
        {
            return parsed;
        }

        errors.Add(new FieldError(field, "must be an amount of USD (a number) or null"));
        return null;
    }

    private static IReadOnlyList<string>? Strings(JsonElement value, string field, List<FieldError> errors)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.String))
        {
            errors.Add(new FieldError(field, "must be an array of strings"));
            return null;
        }

        return value.EnumerateArray().Select(v => v.GetString()!).ToArray();
    }

    private static IReadOnlyDictionary<string, string>? Map(JsonElement value, string field, List<FieldError> errors)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object || value.EnumerateObject().Any(p => p.Value.ValueKind != JsonValueKind.String))
        {
            errors.Add(new FieldError(field, "must be an object of string values"));
            return null;
        }

        return value.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }

    public static string Status(KeyEntry entry, DateTimeOffset now) =>
        entry.Record.RevokedAt is not null ? "revoked"
        : !entry.Record.Enabled ? "disabled"
        : entry.Record.ExpiresAt is { } expires && now >= expires ? "expired"
        : "active";

    /// <param name="shared">The key's counters across every instance (shared state), else this instance's are shown.</param>
    public static void WriteKey(Utf8JsonWriter w, KeyEntry entry, DateTimeOffset now, string? secret = null, KeyRuntimeSnapshot? shared = null)
    {
        var r = entry.Record;
        var live = shared ?? entry.Runtime.Snapshot();
        w.WriteStartObject();
        w.WriteString("id"u8, r.Id);
        w.WriteString("object"u8, "virtual_key"u8);
        if (secret is not null)
        {
            w.WriteString("key"u8, secret);
        }

        w.WriteString("name"u8, r.Name);
        WriteNullable(w, "team"u8, r.Team);
        w.WriteString("display"u8, r.Display);
        w.WriteString("status"u8, Status(entry, now));
        w.WriteString("created_at"u8, r.CreatedAt);
        if (r.ExpiresAt is { } expires)
        {
            w.WriteString("expires_at"u8, expires);
        }
        else
        {
            w.WriteNull("expires_at"u8);
        }

        if (r.RevokedAt is { } revoked)
        {
            w.WriteString("revoked_at"u8, revoked);
        }
        else
        {
            w.WriteNull("revoked_at"u8);
        }

        w.WriteBoolean("enabled"u8, r.Enabled);
        WriteStrings(w, "allowed_models"u8, r.AllowedModels);
        WriteStrings(w, "ip_allowlist"u8, r.IpAllowlist);
        WriteNumber(w, "rpm"u8, r.Rpm);
        WriteNumber(w, "tpm"u8, r.Tpm);
        WriteNumber(w, "max_parallel"u8, r.MaxParallel);
        WriteMoney(w, "daily_budget"u8, r.DailyBudget);
        WriteMoney(w, "monthly_budget"u8, r.MonthlyBudget);
        WriteMoney(w, "total_budget"u8, r.TotalBudget);
        WriteMoney(w, "credit_balance"u8, live.CreditBalance);
        w.WriteStartObject("spend"u8);
        w.WriteNumber("today"u8, live.SpentToday);
        w.WriteNumber("this_month"u8, live.SpentThisMonth);
        w.WriteNumber("total"u8, live.SpentTotal);
        w.WriteEndObject();
        w.WriteStartObject("metadata"u8);
        foreach (var (k, v) in r.Metadata)
        {
            w.WriteString(k, v);
        }

        w.WriteEndObject();
        w.WriteEndObject();
    }

    public static void WriteUsage(Utf8JsonWriter w, KeyEntry entry, KeyRuntimeSnapshot live)
    {
        var r = entry.Record;
        w.WriteStartObject();
        w.WriteString("id"u8, r.Id);
        w.WriteString("object"u8, "key_usage"u8);
        w.WriteString("day"u8, live.Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        w.WriteStartObject("spend"u8);
        w.WriteNumber("today"u8, live.SpentToday);
        w.WriteNumber("this_month"u8, live.SpentThisMonth);
        w.WriteNumber("total"u8, live.SpentTotal);
        w.WriteEndObject();
        w.WriteStartObject("budgets"u8);
        WriteMoney(w, "daily"u8, r.DailyBudget);
        WriteMoney(w, "monthly"u8, r.MonthlyBudget);
        WriteMoney(w, "total"u8, r.TotalBudget);
        w.WriteEndObject();
        w.WriteStartObject("remaining"u8);
        WriteMoney(w, "daily"u8, r.DailyBudget - live.SpentToday);
        WriteMoney(w, "monthly"u8, r.MonthlyBudget - live.SpentThisMonth);
        WriteMoney(w, "total"u8, r.TotalBudget - live.SpentTotal);
        w.WriteEndObject();
        WriteMoney(w, "credit_balance"u8, live.CreditBalance);
        w.WriteNumber("reserved"u8, live.Reserved);
        w.WriteNumber("in_flight"u8, live.InFlight);
        w.WriteNumber("requests_last_minute"u8, live.RequestsLastMinute);
        w.WriteNumber("tokens_last_minute"u8, live.TokensLastMinute);
        w.WriteEndObject();
    }

    private static void WriteNullable(Utf8JsonWriter w, ReadOnlySpan<byte> name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    private static void WriteNumber(Utf8JsonWriter w, ReadOnlySpan<byte> name, int? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void WriteMoney(Utf8JsonWriter w, ReadOnlySpan<byte> name, decimal? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void WriteStrings(Utf8JsonWriter w, ReadOnlySpan<byte> name, IReadOnlyList<string> values)
    {
        w.WriteStartArray(name);
        foreach (var value in values)
        {
            w.WriteStringValue(value);
        }

        w.WriteEndArray();
    }
}
